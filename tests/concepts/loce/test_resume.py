"""LoCE store and study resume identity (see `tests/test_fingerprints.py`).

The store refuses another backbone, instance table, config or key, naming the
field, and leaves its files untouched; an interrupted fit resumed with the
same inputs equals the uninterrupted one bitwise; unlisted part files,
temporary files and a half-deleted `parts/` are cleaned by the next run. The
study refuses another backbone or changed fit settings, and so does its
analysis check, while analysis-only settings stay free.
"""

import dataclasses
import os

import jax
import numpy as np
import pytest

from jaxcxai import checks, features, metric_writers
from jaxcxai.checks import FingerprintError
from jaxcxai.concepts.loce import store as loce_store
from jaxcxai.concepts.loce import study as loce_study
from jaxcxai.concepts.loce.objectives import LoceConfig
from tests.test_fingerprints import snapshot, tiny_backbones


@pytest.fixture(scope="module")
def nets():
    return tiny_backbones()


def _loce_chunks(acts, targets, crash_at=None):
    for i in range(0, len(acts), 4):
        if i // 4 == crash_at:
            raise KeyboardInterrupt("simulated kill")
        yield loce_store.LoceChunk({"l1": acts[i : i + 4]}, targets[i : i + 4])


def test_loce_store_refuses_other_backbone_or_table_and_resumes_bitwise(nets, tmp_path):
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    targets = (rng.uniform(size=(8, 6, 6)) > 0.5).astype(np.float32)
    table = {"row": np.arange(8), "concept": np.repeat([1, 2], 4)}
    bfp = features.backbone_fingerprint(nets[0])
    fp = {"backbone": bfp, "instances": table}
    cfg = LoceConfig(steps=3)
    kw = dict(config=cfg, key=jax.random.key(0))
    straight = loce_store.fit_to_store(_loce_chunks(acts, targets),
                                       str(tmp_path / "a"), fingerprint=fp, **kw)  # fmt: skip
    b = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        loce_store.fit_to_store(_loce_chunks(acts, targets, crash_at=1), b,
                                fingerprint=fp, **kw)  # fmt: skip
    before = snapshot(b)
    other_table = dict(table, concept=np.repeat([1, 3], 4))
    cases = [
        ("backbone.weights", {"backbone": features.backbone_fingerprint(nets[1]),
                              "instances": table}, kw),
        ("instances.concept", {"backbone": bfp, "instances": other_table}, kw),
        ("config.steps", fp, dict(kw, config=LoceConfig(steps=4))),
        ("key", fp, dict(kw, key=jax.random.key(1))),
    ]  # fmt: skip
    for changed, fields, kwargs in cases:
        with pytest.raises(FingerprintError) as err:
            loce_store.fit_to_store(_loce_chunks(acts, targets), b,
                                    fingerprint=fields, **kwargs)  # fmt: skip
        assert err.value.changed == [changed], err.value
        assert f"delete {b}" in str(err.value)
        assert snapshot(b) == before
    # A part file past the recorded chunks (a kill before meta.json) is
    # replaced, not trusted.
    (tmp_path / "b" / "parts" / "chunk_000001.npz").write_bytes(b"garbage")
    (tmp_path / "b" / "parts" / "chunk_000001.npz.tmp-99999999").write_bytes(b"x")
    resumed = loce_store.fit_to_store(_loce_chunks(acts, targets), b,
                                      fingerprint=fp, **kw)  # fmt: skip
    for res in (resumed, loce_store.load_results(b)):
        for field, value in straight.layers["l1"].items():
            np.testing.assert_array_equal(res.layers["l1"][field], value)
    assert sorted(os.listdir(b)) == ["meta.json", "results.npz"]
    # A finished store is checked too, and a kill during its final cleanup
    # (parts/ half deleted, a temporary file) is cleaned by the next run.
    with pytest.raises(FingerprintError, match="instances.concept changed"):
        loce_store.fit_to_store(_loce_chunks(acts, targets), b, **kw,
                                fingerprint={"backbone": bfp, "instances": other_table})  # fmt: skip
    os.makedirs(os.path.join(b, "parts"))
    (tmp_path / "b" / "parts" / "chunk_000000.npz").write_bytes(b"x")
    (tmp_path / "b" / "results.npz.tmp-99999999").write_bytes(b"x")
    again = loce_store.fit_to_store(iter(()), b, fingerprint=fp, **kw)
    np.testing.assert_array_equal(again.layers["l1"]["loce"],
                                  straight.layers["l1"]["loce"])  # fmt: skip
    assert sorted(os.listdir(b)) == ["meta.json", "results.npz"]


def _loce_settings(**loce):
    return loce_study.LoceStudy(
        seed=0, backbone="unused", layers=("conv2",), batch_size=8,
        data=loce_study.LoceData(num_images=8, min_area=2, max_per_concept=3),
        loce=loce_study.LoceSettings(steps=3, chunk_size=8, **loce),
    )  # fmt: skip


def test_loce_study_refuses_another_backbone_or_settings(nets, tmp_path):
    net_a, net_b = nets
    first = loce_study.fit(_loce_settings(), str(tmp_path), net_a, progress=False)
    before = snapshot(tmp_path)
    for changed, st, net in (("backbone.weights", _loce_settings(), net_b),
                             ("settings.loce.lr", _loce_settings(lr=0.2), net_a)):  # fmt: skip
        with pytest.raises(FingerprintError) as err:
            loce_study.fit(st, str(tmp_path), net, progress=False)
        assert err.value.changed == [changed]
        assert snapshot(tmp_path) == before
    # The store records the backbone too: a study record deleted by hand
    # does not let another backbone through.
    os.remove(tmp_path / loce_study.FINGERPRINT)
    with pytest.raises(FingerprintError, match="carries no fingerprint"):
        loce_study.fit(_loce_settings(), str(tmp_path), net_b, progress=False)
    metric_writers.write_json_atomic(
        str(tmp_path / loce_study.FINGERPRINT),
        checks.fingerprint_record(
            loce_study.fingerprint_fields(_loce_settings(), net_b)
        ),
    )
    with pytest.raises(FingerprintError, match="backbone.weights changed") as err:
        loce_study.fit(_loce_settings(), str(tmp_path), net_b, progress=False)
    assert "LoCE store" in str(err.value)
    os.remove(tmp_path / loce_study.FINGERPRINT)
    (tmp_path / loce_study.FINGERPRINT).write_text(
        before[loce_study.FINGERPRINT].decode()
    )
    again = loce_study.fit(_loce_settings(), str(tmp_path), net_a, progress=False)
    np.testing.assert_array_equal(again.layers["conv2"]["loce"],
                                  first.layers["conv2"]["loce"])  # fmt: skip
    # Analysis checks the workdir too; the held-out scenes are its own.
    st = _loce_settings()
    st = dataclasses.replace(st, data=dataclasses.replace(st.data, eval_seed=1))
    loce_study.check_workdir(st, str(tmp_path), net_a)
    with pytest.raises(FingerprintError, match="backbone.weights changed"):
        loce_study.check_workdir(st, str(tmp_path), net_b)
    with pytest.raises(FingerprintError, match="carries no fingerprint"):
        loce_study.check_workdir(st, str(tmp_path / "none"), net_a)
