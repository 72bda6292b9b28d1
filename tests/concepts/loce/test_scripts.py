"""LoCE scripts end to end (train.loce, eval.loce) and the main-job stage.

A tiny small_cnn is trained once per module; the checks compare the stored
index table with an independent count of SynthAerial instances, and the
reported separation and retrieval numbers with brute-force NumPy.
"""

import json
import os

import numpy as np
import pytest

from configs import loce as loce_config
from eval import loce as eval_loce
from eval.stages import loce as stage_loce
from jaxcxai.concepts.loce import pipeline as loce_pipeline
from jaxcxai.concepts.loce import store as loce_store
from jaxcxai.concepts.loce import study as loce_study
from jaxcxai.concepts.loce.objectives import LoceConfig
from jaxcxai.data import synthaerial
from jaxcxai.data.resample import interpolation_matrix
from jaxcxai.training.backbone import load_trained
from tests.paths import CONFIGS
from train import loce as train_loce

CONFIG = os.path.join(CONFIGS, "loce.py")


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_backbone):
    """A main-job-like workdir holding backbones/small_cnn (tiny, 30 steps)."""
    root = tmp_path_factory.mktemp("job")
    tiny_backbone(root / "backbones" / "small_cnn")
    return root


def _expected_instances(config):
    """(image index, concept, sub-concept, background) of every instance with
    at least min_area pixels, counted one object at a time."""
    d = config.data
    data = synthaerial.generate(d.num_images, size=32, seed=d.seed)
    rows = []
    for i in range(d.num_images):
        for j in range(data["num_objects"][i]):
            if (data["instance_mask"][i] == j + 1).sum() < d.min_area:
                continue
            name = synthaerial.CONCEPTS[data["obj_class"][i, j] - 1]
            sub = synthaerial.SUBCONCEPTS[name][data["obj_subconcept"][i, j]]
            bg = synthaerial.BACKGROUNDS[data["obj_background"][i, j]]
            rows.append((str(data["index"][i]), name, sub, bg))
    return rows


def _brute_sep(x, a, b):
    """Sep(a, b): min cross distance / (max distance in the union + 1e-6)."""
    x = np.asarray(x, np.float64)
    xa, xb = x[a], x[b]
    cross = np.sqrt(((xa[:, None] - xb[None]) ** 2).sum(-1))
    u = np.concatenate([xa, xb])
    diam = np.sqrt(((u[:, None] - u[None]) ** 2).sum(-1)).max()
    return cross.min() / (diam + 1e-6)


def _brute_p_at_1(x, labels):
    """Nearest other LoCE (cosine) has the query's label; per-class mean, then mean."""
    x = np.asarray(x, np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - u @ u.T
    np.fill_diagonal(d, np.inf)
    hit = labels[np.argmin(d, axis=1)] == labels
    return np.mean([hit[labels == c].mean() for c in np.unique(labels)])


def test_scripts_end_to_end(job_dir, tmp_path):
    config = loce_config.get_config("tiny")
    backbone = str(job_dir / "backbones" / "small_cnn")
    args = ["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path)]
    train_loce.main(args + [f"--config.backbone={backbone}"])
    store = loce_store.load_results(str(tmp_path / "store"))
    n = store.meta["n"]
    assert store.layers["conv2"]["loce"].shape == (n, 64)
    assert store.layers["conv3"]["loce"].shape == (n, 128)
    for layer in store.layers.values():
        for key in ("iou", "iou_orig"):
            assert np.all((layer[key] >= 0) & (layer[key] <= 1))
    # The index table lists exactly the generated instances above min_area.
    got = sorted(zip(*(store.index[k] for k in loce_store.INDEX_FIELDS)))
    expected = sorted(_expected_instances(config))
    assert got == expected
    for name in ("car", "truck"):
        assert np.sum(store.index["concept"] == name) == sum(
            r[1] == name for r in expected
        )
    table = loce_study.load_table(str(tmp_path))
    assert np.array_equal(
        loce_pipeline.index_columns(table)["concept"], store.index["concept"]
    )

    eval_loce.main(args + [f"--config.backbone={backbone}"])
    for name in ("loce_report.md", "loce_results.json"):
        assert os.path.getsize(tmp_path / name) > 0
    figs = ["embedding", "embedding_agnostic", "dendrogram", "separation"]
    figs += ["overlap", "retrieval", "outliers_car"]
    for fig in figs:
        assert os.path.getsize(tmp_path / f"{fig}.png") > 1000, fig
    res = json.load(open(tmp_path / "loce_results.json"))
    assert res["subconcepts"], "no concept with two sub-concepts was analysed"
    for v in res["subconcepts"].values():
        for key in ("ari_gmm", "ari_agnostic", "ari_hac2"):
            assert -1.0 <= v[key] <= 1.0
    for per_concept in res["segmentation"].values():
        for row in per_concept.values():
            for key, iou in row.items():
                assert key == "n_images" or iou is None or 0.0 <= iou <= 1.0
    # Reported numbers against brute force on the stored LoCEs.
    keep = np.isin(store.index["concept"], res["analysed"])
    x = np.concatenate([store.layers[k]["loce"] for k in ("conv2", "conv3")], 1)
    labels = store.index["concept"][keep]
    ct = res["features"]["ml"]["car_truck"]
    want = _brute_sep(x[keep], labels == "car", labels == "truck")
    np.testing.assert_allclose(ct["sep"], want, rtol=1e-3, atol=1e-5)
    p1 = res["features"]["ml"]["retrieval"]["precision_at_k"]["1"]
    np.testing.assert_allclose(p1, _brute_p_at_1(x[keep], labels), atol=1e-6)
    report = open(tmp_path / "loce_report.md").read()
    assert "Car/truck confusion" in report and "Sub-concepts found" in report


def test_stage_runs_with_relative_backbone(job_dir):
    config = loce_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    # Same shapes as the script test above: the jitted fits and analyses are
    # compiled already, which keeps this test cheap.
    stage_dir = job_dir / "loce"
    stage_dir.mkdir()
    out = stage_loce.loce(config, str(stage_dir))
    json.dumps(out)  # the main job stores it as JSON
    assert "Car/truck" in out["markdown"]
    for fig in out["figures"]:
        assert os.path.getsize(stage_dir / fig) > 1000, fig
    for v in out["results"]["subconcepts"].values():
        assert -1.0 <= v["ari_hac2"] <= 1.0
    assert out["results"]["seconds"] > 0


def test_select_instances_cap_and_chunks():
    data = synthaerial.generate(6, size=32, seed=3)
    full = loce_pipeline.select_instances(data, min_area=2)
    capped = loce_pipeline.select_instances(data, min_area=2, max_per_concept=3, seed=1)
    counts = np.bincount(full["concept"], minlength=9)
    np.testing.assert_array_equal(
        np.bincount(capped["concept"], minlength=9), np.minimum(counts, 3)
    )
    # The capped rows are a subset of the full table, still in (row, id) order.
    pairs = set(zip(full["row"], full["instance"]))
    assert set(zip(capped["row"], capped["instance"])) <= pairs
    order = capped["row"] * 100 + capped["instance"]
    assert np.all(np.diff(order) > 0)
    # Areas and bboxes agree with the masks.
    for r, j, area, (y0, x0, y1, x1) in zip(
        full["row"], full["instance"], full["area"], full["bbox"]
    ):
        mask = data["instance_mask"][r] == j
        ys, xs = np.nonzero(mask)
        assert area == mask.sum() >= 2
        assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (y0, x0, y1, x1)
    bounds = loce_pipeline.chunk_bounds(10, 4)
    np.testing.assert_array_equal(bounds, [0, 3, 6, 10])
    assert list(loce_pipeline.chunk_bounds(8, 4)) == [0, 4, 8]


class _FailingActs:
    """Activations whose reads fail after `ok` chunks (an interrupted fit)."""

    def __init__(self, a, ok):
        self.a, self.ok = a, ok

    def __getitem__(self, rows):
        if self.ok == 0:
            raise RuntimeError("interrupted")
        self.ok -= 1
        return self.a[rows]


def test_fit_instances_resumes_after_interruption(tmp_path):
    data = synthaerial.generate(4, size=32, seed=5)
    table = loce_pipeline.select_instances(data, min_area=2)
    table = {k: v[:12] for k, v in table.items()}  # three chunks of four
    acts = np.random.default_rng(0).normal(size=(4, 8, 8, 5)).astype(np.float32)
    kw = dict(config=LoceConfig(steps=3), chunk_size=4, progress=False)
    mask = data["instance_mask"]
    whole = loce_pipeline.fit_instances(
        {"a": acts}, mask, table, str(tmp_path / "whole"), **kw
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        loce_pipeline.fit_instances(
            {"a": _FailingActs(acts, 2)}, mask, table, str(tmp_path / "cut"), **kw
        )
    meta = json.load(open(tmp_path / "cut" / "meta.json"))
    assert meta["chunks_done"] == 2 and not meta.get("finished")
    # The resumed run reads only the last chunk's activations.
    resumed = loce_pipeline.fit_instances(
        {"a": _FailingActs(acts, 1)}, mask, table, str(tmp_path / "cut"), **kw
    )
    np.testing.assert_array_equal(
        resumed.layers["a"]["loce"], whole.layers["a"]["loce"]
    )
    assert list(resumed.index["concept"]) == list(whole.index["concept"])
    # Targets are the instances' own masks: with grid = image size, the
    # stored IoU is that of logits > 0 (bilinear upsampling, float64 here)
    # against the binary mask of instance j of its image.
    a_h = interpolation_matrix(8, 32, "bilinear").astype(np.float64)
    for i, v in enumerate(whole.layers["a"]["loce"]):
        z = a_h @ (acts[table["row"][i]] @ v.astype(np.float64)) @ a_h.T
        truth = mask[table["row"][i]] == table["instance"][i]
        iou = ((z > 0) & truth).sum() / max(((z > 0) | truth).sum(), 1)
        np.testing.assert_allclose(whole.layers["a"]["iou"][i], iou, atol=0.02)


def test_missing_backbone_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained backbone"):
        load_trained(str(tmp_path / "nowhere"))
