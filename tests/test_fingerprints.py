"""Resume identity: changed inputs are refused, unchanged ones resume exactly,
and a killed run leaves no orphan files after the next one.

The record itself (`jaxcxai.checks`), the feature cache and atomic writes;
the LoCE store and study and the probe study are tested in
`tests/concepts/{loce,probes}/test_resume.py` with the helpers here. Each
test interrupts a run, resumes it with one input changed (another backbone's
weights, another data spec, a changed setting) and expects `FingerprintError`
naming exactly that field, with the stored files untouched; resuming with the
same inputs must give arrays bitwise equal to an uninterrupted run. Orphans
(temporary files, chunk files the index does not list) are planted as a kill
would leave them and must be gone after the next run.
"""

import json
import os
import pickle

import jax
import numpy as np
import pytest

from jaxcxai import checks, features, metric_writers
from jaxcxai.checks import FingerprintError
from jaxcxai.data import synthaerial
from jaxcxai.models.zoo import get_model
from jaxcxai.training import backbone

SIZE = 32


def tiny_backbones():
    """Two untrained small_cnns as `TrainedBackbone`s: B's weights are A's
    scaled by 1.5 (one compile of the init instead of two)."""
    outputs = synthaerial.SCENES
    model = get_model("small_cnn", num_classes=len(outputs))
    variables = jax.device_get(
        jax.jit(model.init)(jax.random.key(0), np.zeros((1, SIZE, SIZE, 3)))
    )
    meta = backbone.BackboneMeta("small_cnn", tuple(outputs), len(outputs), SIZE,
                                 "synthaerial", 1e-3, 10, 0.0)  # fmt: skip
    pre = backbone.preprocess_fn("small_cnn")
    other = dict(variables, params=jax.tree.map(lambda x: 1.5 * x, variables["params"]))
    return (backbone.TrainedBackbone(model, variables, meta, pre),
            backbone.TrainedBackbone(model, other, meta, pre))  # fmt: skip


def snapshot(folder) -> dict:
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


@pytest.fixture(scope="module")
def nets():
    return tiny_backbones()


def test_records_name_each_changed_field_and_survive_pickling(tmp_path):
    w = {"params": {"k": np.arange(6, dtype=np.float32)}}
    a = {"backbone": {"weights": checks.fingerprint(w)}, "data": {"seed": 0},
         "layers": ("conv1", "conv2")}  # fmt: skip
    # The digest is of dtype, shape and bytes: a JAX copy hashes the same,
    # another dtype or one changed value does not.
    assert checks.fingerprint(w) == checks.fingerprint(
        jax.tree.map(jax.numpy.asarray, w)
    )
    assert checks.fingerprint(w) != checks.fingerprint(
        {"params": {"k": np.arange(6.0)}}
    )
    b = {"backbone": {"weights": checks.fingerprint({"params": {"k": np.ones(6)}})},
         "data": {"seed": 1}, "layers": ("conv1", "conv2")}  # fmt: skip
    path = str(tmp_path / "fingerprint.json")
    checks.resume_check(path, a, what="study X", fresh="delete X")
    checks.resume_check(path, a, what="study X", fresh="delete X")  # unchanged
    with pytest.raises(FingerprintError) as err:
        checks.resume_check(path, b, what="study X", fresh="delete X")
    assert err.value.changed == ["backbone.weights", "data.seed"]
    msg = str(err.value)
    assert msg.startswith("study X holds the work of another config")
    assert "data.seed changed (recorded 0, now 1)" in msg
    assert msg.endswith("To start afresh, delete X.")
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == msg and again.changed == err.value.changed
    # Work without a record (written before fingerprints) is refused too.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "result.npz").write_bytes(b"x")
    with pytest.raises(FingerprintError, match="carries no fingerprint"):
        checks.resume_check(str(tmp_path / "old" / "fp.json"), a, what="w",
                            fresh="delete w", guard=[str(tmp_path / "old" / "result.npz")])  # fmt: skip


def _crash_after(images, batches):
    for k in range(0, len(images), 8):
        if k // 8 == batches:
            raise KeyboardInterrupt("simulated kill")
        yield images[k : k + 8]


def test_feature_cache_refuses_other_weights_and_resumes_bitwise(nets, tmp_path):
    net_a, net_b = nets
    images = synthaerial.generate(32, size=SIZE, seed=5)["image"]
    fp = {"backbone": features.backbone_fingerprint(net_a), "data": {"seed": 5}}
    kw = dict(batch_size=8, chunk_size=8, dtype=np.float32, progress=False)
    straight = features.extract(net_a.apply, images, ["conv1", "conv2"],
                                cache_dir=tmp_path / "a", fingerprint=fp, **kw)  # fmt: skip
    part = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        features.extract(net_a.apply, _crash_after(images, 2), ["conv1", "conv2"],
                         cache_dir=part, fingerprint=fp, **kw)  # fmt: skip
    before = snapshot(part)
    assert 0 < len(features.FeatureCache(part)) < 32
    other = {"backbone": features.backbone_fingerprint(net_b), "data": {"seed": 5}}
    for changed, fields in (("backbone.weights", other),
                            ("data.seed", dict(fp, data={"seed": 6}))):  # fmt: skip
        with pytest.raises(FingerprintError) as err:
            features.extract(net_b.apply, images, ["conv1", "conv2"],
                             cache_dir=part, fingerprint=fields, **kw)  # fmt: skip
        assert err.value.changed == [changed]
        assert f"delete {part}" in str(err.value)
        assert snapshot(part) == before  # nothing appended, nothing cleaned
    with pytest.raises(FingerprintError, match=r"extraction\.dtype changed"):
        features.extract(net_a.apply, images, ["conv1", "conv2"], cache_dir=part,
                         fingerprint=fp, **(kw | {"dtype": np.float16}))  # fmt: skip
    resumed = features.extract(net_a.apply, images, ["conv1", "conv2"],
                               cache_dir=part, fingerprint=fp, **kw)  # fmt: skip
    assert resumed.complete and resumed.names == straight.names
    for name in straight.names:
        np.testing.assert_array_equal(resumed[name], straight[name])
    # A complete cache is checked as well before it is returned.
    with pytest.raises(FingerprintError, match="backbone.weights changed"):
        features.extract(net_b.apply, images, ["conv1", "conv2"],
                         cache_dir=part, fingerprint=other, **kw)  # fmt: skip


def test_feature_cache_kill_leaves_no_orphans(nets, tmp_path):
    net = nets[0]
    images = synthaerial.generate(24, size=SIZE, seed=7)["image"]
    kw = dict(batch_size=8, chunk_size=8, dtype=np.float32, progress=False,
              cache_dir=tmp_path, fingerprint={"seed": 7})  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        features.extract(net.apply, _crash_after(images, 2), ["conv1"], **kw)
    listed = set(os.listdir(tmp_path))
    # A kill between a chunk's files and the index; a kill inside a write.
    cache = features.FeatureCache(tmp_path)
    for name in cache.names:
        (tmp_path / f"{cache.index['entries'][name]['file']}.00001.npy").write_bytes(
            b"x"
        )
    (tmp_path / "index.json.tmp-99999999").write_bytes(b"{")
    (tmp_path / "e0-conv1.00002.npy.tmp-99999999").write_bytes(b"half")
    resumed = features.extract(net.apply, images, ["conv1"], **kw)
    assert resumed.complete and len(resumed) == 24
    expected = {f"{resumed.index['entries'][n]['file']}.{k:05d}.npy"
                for n in resumed.names for k in range(3)} | {"index.json"}  # fmt: skip
    assert set(os.listdir(tmp_path)) == expected and listed <= expected
    ref = features.extract(net.apply, images, ["conv1"], batch_size=8,
                           dtype=np.float32, progress=False)  # fmt: skip
    np.testing.assert_array_equal(resumed["conv1"], ref["conv1"])
    # Files no later write would replace are deleted too, also when the
    # cache is complete and nothing is extracted.
    (tmp_path / "e0-conv1.00007.npy").write_bytes(b"x")
    (tmp_path / "e1-conv1_pooled.00003.npy.tmp-99999999").write_bytes(b"x")
    again = features.extract(net.apply, images, ["conv1"], **kw)
    assert set(os.listdir(tmp_path)) == expected
    np.testing.assert_array_equal(again["conv1"], ref["conv1"])


def test_atomic_write_removes_dead_writers_temp_files(tmp_path):
    path = tmp_path / "stage.json"
    dead = tmp_path / "stage.json.tmp-99999999"  # no such process: a killed run
    dead.write_text("{")
    live = tmp_path / "stage.json.tmp-1"  # pid 1 exists: maybe writing now
    live.write_text("{")
    metric_writers.write_json_atomic(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["stage.json", "stage.json.tmp-1"]
