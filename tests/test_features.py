"""Sharded, cached feature extraction (jaxcxai.features)."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxcxai import features, parallel

N, BATCH, CHUNK = 40, 8, 8


class _TinyBackbone(nn.Module):
    @nn.compact
    def __call__(self, x):
        a1 = nn.relu(nn.Conv(4, (3, 3))(x))
        a2 = nn.relu(nn.Conv(6, (3, 3), strides=2)(a1))
        return nn.Dense(3)(a2.mean((1, 2))), {"conv1": a1, "conv2": a2}


@pytest.fixture(scope="module")
def setup():
    model = _TinyBackbone()
    images = np.random.default_rng(0).normal(size=(N, 8, 8, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), images[:1])

    def apply_fn(x):
        return model.apply(variables, x)

    # Reference: one unsharded call on the whole set, outside extract.
    logits, acts = jax.jit(apply_fn)(images)
    ref = {k: np.asarray(v) for k, v in acts.items()} | {"logits": np.asarray(logits)}
    return apply_fn, images, ref


def _single_device_mesh():
    return parallel.make_mesh(devices=jax.devices()[:1])


@pytest.mark.multidevice
def test_sharded_matches_single_device_and_numpy(setup):
    apply_fn, images, ref = setup
    assert jax.device_count() == 8
    kw = dict(batch_size=BATCH, dtype=np.float32, progress=False)
    # 36 examples: the last batch (4) is padded to the 8 devices, then trimmed.
    multi = features.extract(apply_fn, images[:36], ["conv1", "conv2", "logits"], **kw)
    single = features.extract(
        apply_fn,
        images[:36],
        ["conv1", "conv2", "logits"],
        mesh=_single_device_mesh(),
        **kw,
    )
    assert set(multi) == set(single)
    for name in multi:
        np.testing.assert_allclose(multi[name], single[name], rtol=1e-6, atol=1e-6)
    for layer in ("conv1", "conv2", "logits"):
        np.testing.assert_allclose(multi[layer], ref[layer][:36], rtol=1e-5, atol=1e-6)
    # Pooled = float64 mean over H, W of the reference activations.
    pooled64 = ref["conv2"][:36].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(multi["conv2/pooled"], pooled64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(multi["logits/pooled"], ref["logits"][:36], atol=1e-6)


def test_dtype_choice(setup, tmp_path):
    apply_fn, images, ref = setup
    half = features.extract(
        apply_fn, images, ["conv1"], batch_size=BATCH, progress=False
    )
    assert half["conv1"].dtype == np.float16
    assert half["conv1/pooled"].dtype == np.float32
    np.testing.assert_allclose(half["conv1"], ref["conv1"], rtol=2e-3, atol=2e-3)
    cache = features.extract(
        apply_fn,
        images,
        ["conv2"],
        batch_size=BATCH,
        dtype=np.float32,
        keep_acts=False,
        cache_dir=tmp_path,
        progress=False,
    )
    assert cache.names == ["conv2/pooled"]
    assert cache.dtype("conv2/pooled") == np.float32
    with pytest.raises(ValueError, match="float16 or float32"):
        features.extract(apply_fn, images, ["conv1"], batch_size=BATCH, dtype=np.int8)


def _batches_then_crash(images, size, crash_after):
    for k in range(0, len(images), size):
        if k // size == crash_after:
            raise RuntimeError("simulated interruption")
        yield images[k : k + size]


def test_interrupted_cache_resumes(setup, tmp_path):
    apply_fn, images, ref = setup
    kw = dict(batch_size=BATCH, chunk_size=CHUNK, cache_dir=tmp_path, progress=False)
    with pytest.raises(RuntimeError, match="simulated"):
        features.extract(apply_fn, _batches_then_crash(images, 4, 7), ["conv2"], **kw)
    partial = features.FeatureCache(tmp_path)
    assert not partial.complete and len(partial) % CHUNK == 0 and 0 < len(partial) < N
    assert not list(tmp_path.glob("*.tmp-*"))
    done = len(partial)
    # Poison the finished part: if resuming recomputed it, NaNs would appear.
    poisoned = images.copy()
    poisoned[:done] = np.nan
    cache = features.extract(apply_fn, poisoned, ["conv2"], **kw)
    assert cache.complete and len(cache) == N and cache.num_chunks == N // CHUNK
    np.testing.assert_allclose(cache["conv2"], ref["conv2"], rtol=2e-3, atol=2e-3)
    chunks = list(cache.iter_chunks("conv2/pooled"))
    assert [len(c) for c in chunks] == [CHUNK] * (N // CHUNK)
    np.testing.assert_array_equal(np.concatenate(chunks), cache.pooled("conv2"))
    # A complete cache returns without touching the (now fully poisoned) input.
    again = features.extract(apply_fn, np.full_like(images, np.nan), ["conv2"], **kw)
    np.testing.assert_array_equal(again["conv2"], cache["conv2"])


def test_missing_last_chunk_and_temp_file(setup, tmp_path):
    apply_fn, images, ref = setup
    kw = dict(batch_size=BATCH, chunk_size=CHUNK, cache_dir=tmp_path, progress=False)
    kw |= dict(dtype=np.float32)
    full = features.extract(apply_fn, images, ["conv1"], **kw)
    before = full["conv1"].copy()
    last = full.num_chunks - 1
    full.chunk_file("conv1", last).unlink()
    tmp = full.chunk_file("conv1/pooled", last).with_suffix(".npy.tmp-99999999")
    tmp.write_bytes(b"half-written garbage")
    poisoned = images.copy()
    poisoned[: last * CHUNK] = np.nan
    resumed = features.extract(apply_fn, poisoned, ["conv1"], **kw)
    assert resumed.complete and not tmp.exists()
    np.testing.assert_array_equal(resumed["conv1"], before)
    np.testing.assert_allclose(
        resumed.pooled("conv1"), ref["conv1"].mean((1, 2)), atol=1e-6
    )
    with pytest.raises(ValueError, match="dtype"):
        features.extract(apply_fn, images, ["conv1"], **(kw | dict(dtype=np.float16)))


@pytest.mark.multidevice
def test_bad_inputs(setup):
    apply_fn, images, _ = setup
    with pytest.raises(ValueError, match=r"4-D batch.*\(8, 8, 3\)"):
        features.extract(apply_fn, images[0], ["conv1"], batch_size=BATCH)
    with pytest.raises(ValueError, match="batch 1 of the image iterable"):
        features.extract(apply_fn, [images[:4], images[0]], ["conv1"], batch_size=BATCH)
    with pytest.raises(ValueError, match="not divisible"):
        features.extract(apply_fn, images, ["conv1"], batch_size=6)
    with pytest.raises(KeyError, match="conv9"):
        features.extract(apply_fn, images, ["conv9"], batch_size=BATCH, progress=False)
