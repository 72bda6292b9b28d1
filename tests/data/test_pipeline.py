"""NumPy input pipeline: deterministic shuffling, host splits, batching, prefetch."""

import jax
import numpy as np
import pytest

from jaxcxai import parallel
from jaxcxai.data import pipeline, tfds_builder
from jaxcxai.data import synthaerial as sa


def _source(n=50):
    return {"x": np.arange(n) * 10, "y": np.arange(n * 2).reshape(n, 2)}


def _ids(batches):
    return [b["x"] // 10 for b in batches]


def test_epochs_are_seeded_permutations():
    src = _source(50)
    a = _ids(pipeline.iterate(src, 8, seed=3, num_epochs=2, num_devices=8))
    b = _ids(pipeline.iterate(src, 8, seed=3, num_epochs=2, num_devices=8))
    assert len(a) == 2 * (50 // 8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    e0, e1 = np.concatenate(a[:6]), np.concatenate(a[6:])
    assert len(set(e0.tolist())) == 48 and len(set(e1.tolist())) == 48  # no repeats
    assert not np.array_equal(e0, e1)  # reshuffled every epoch
    # The order is exactly numpy's permutation from (seed, epoch): an independent oracle.
    np.testing.assert_array_equal(
        e1, np.random.default_rng([3, 1]).permutation(50)[:48]
    )
    c = _ids(pipeline.iterate(src, 8, seed=4, num_epochs=1, num_devices=8))
    assert not np.array_equal(np.concatenate(c), e0)
    plain = _ids(pipeline.iterate(src, 8, shuffle=False, num_devices=8))
    np.testing.assert_array_equal(np.concatenate(plain), np.arange(48))


def test_fields_stay_aligned_and_keys_select():
    src = _source(20)
    for b in pipeline.iterate(src, 4, seed=1, num_devices=4, keys=["y", "x"]):
        assert set(b) == {"x", "y"}
        np.testing.assert_array_equal(b["y"][:, 0], b["x"] // 10 * 2)


def test_host_splits_disjoint_and_covering():
    src, g, hosts = _source(100), 16, 4
    per_host = [
        _ids(
            pipeline.iterate(
                src, g, seed=9, num_devices=8, process_index=h, process_count=hosts
            )
        )
        for h in range(hosts)
    ]
    single = _ids(pipeline.iterate(src, g, seed=9, num_devices=8, process_count=1))
    for step, glob in enumerate(single):
        shares = [per_host[h][step] for h in range(hosts)]
        assert all(len(s) == g // hosts for s in shares)
        # Host h feeds the h-th contiguous slice of the global batch (shard_batch order).
        np.testing.assert_array_equal(np.concatenate(shares), glob)
    seen = [set(np.concatenate(p).tolist()) for p in per_host]
    for i in range(hosts):
        for j in range(i + 1, hosts):
            assert not seen[i] & seen[j]
    assert set().union(*seen) == set(np.concatenate(single).tolist())
    assert len(set().union(*seen)) == (100 // g) * g


@pytest.mark.multidevice
def test_batch_size_errors():
    with pytest.raises(ValueError, match=r"12.*device count 8"):
        pipeline.iterate(_source(), 12)  # tests run with 8 fake devices
    with pytest.raises(ValueError, match=r"12.*process count 8"):
        pipeline.iterate(_source(), 12, num_devices=4, process_count=8)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        next(pipeline.iterate(_source(5), 8))
    with pytest.raises(ValueError, match="leading length"):
        pipeline.iterate({"a": np.zeros(3), "b": np.zeros(4)}, 1, num_devices=1)


def test_resume_from_step():
    src = _source(40)
    full = _ids(pipeline.iterate(src, 8, seed=2, num_epochs=3, num_devices=8))
    resumed = _ids(
        pipeline.iterate(src, 8, seed=2, num_epochs=3, start_step=7, num_devices=8)
    )
    assert len(resumed) == len(full) - 7
    for x, y in zip(full[7:], resumed, strict=True):
        np.testing.assert_array_equal(x, y)


def test_prefetch_matches_and_propagates_errors():
    src = _source(64)
    plain = _ids(pipeline.iterate(src, 8, seed=5, num_epochs=2))
    pre = _ids(pipeline.iterate(src, 8, seed=5, num_epochs=2, prefetch=3))
    for x, y in zip(plain, pre, strict=True):
        np.testing.assert_array_equal(x, y)
    forever = pipeline.iterate(src, 8, num_epochs=None, prefetch=2)
    for _ in range(20):  # repeats past the end of an epoch
        next(forever)
    forever.close()  # stops the producer thread without hanging

    def boom():
        yield 1
        raise RuntimeError("producer failed")

    it = pipeline.prefetch_iterator(boom(), 2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="producer failed"):
        next(it)


def test_tfds_source_to_sharded_batch(tmp_path):
    tfds_builder.build(str(tmp_path), num_train=16, num_test=0, size=32, seed=4)
    src = tfds_builder.load(str(tmp_path), "train")
    ref = sa.generate(16, size=32, seed=4)
    keys = ["image", "scene", "objects_present"]
    batches = list(pipeline.iterate(src, 8, seed=0, keys=keys, prefetch=1))
    assert len(batches) == 2
    for b, idx in zip(batches, pipeline.batch_indices(16, 8, 0, seed=0), strict=True):
        for k in keys:
            np.testing.assert_array_equal(b[k], ref[k][idx])
    mesh = parallel.make_mesh()
    sharded = parallel.shard_batch(batches[0], mesh)
    assert sharded["image"].shape == (8, 32, 32, 3)
    assert len(sharded["image"].sharding.device_set) == jax.device_count()
