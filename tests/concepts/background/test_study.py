"""The background-bias study end to end: `eval.background` on the tiny config
and the main-job stage `background`, with a tiny trained small_cnn.

One IoU cell is recomputed independently from the saved arrays: the test
views' activations by calling the backbone, torch-style bilinear resizing
to the 80 x 80 grid and the smoothed IoU in NumPy, then its group mean and
sample std. Bad settings stop with an error naming the field before
anything is written.
"""

import json
import os
import re

import jax
import numpy as np
import pytest

from configs import background as background_config
from eval import background as eval_background
from eval.stages import background as stage_background
from jaxcxai.concepts.background import bias, pools, report, study
from jaxcxai.data import synthaerial
from jaxcxai.training.backbone import load_trained
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "background.py")
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("background_iou.png", "sample_views.png")


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_backbone):
    """A main-job-like workdir holding backbones/small_cnn (tiny, 10 steps:
    the checks recompute what the study reports, whatever the accuracy)."""
    root = tmp_path_factory.mktemp("job")
    tiny_backbone(root / "backbones" / "small_cnn", "small_cnn_tiny_10")
    return root


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == PNG


def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) torch bilinear weights, align_corners=False, no AA."""
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.floor(src).astype(int)
    i1, w = np.minimum(i0 + 1, n_in - 1), src - i0
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1 - w)
    np.add.at(m, (np.arange(n_out), i1), w)
    return m


def _resize(x, t=80):  # (..., h, w) -> (..., t, t)
    return np.einsum("ih,...hw,jw->...ij", _bilinear(x.shape[-2], t), x,
                     _bilinear(x.shape[-1], t))  # fmt: skip


def _np_ious(vec, acts_nhwc, masks):
    a = _resize(np.asarray(acts_nhwc, np.float64).transpose(0, 3, 1, 2))
    pred = np.einsum("c,nchw->nhw", vec.astype(np.float64), a) > 0  # sigmoid > 0.5
    true = _resize(masks.astype(np.float64)) > 0
    inter, union = (pred & true).sum((1, 2)), (pred | true).sum((1, 2))
    return (inter + 1e-4) / (union + 1e-4)


def _check_cell(work, net):
    res = json.loads((work / study.RESULTS).read_text())
    arrays = study.load_npz(str(work / study.ARRAYS))
    layer, method, kind, group = res["layers"][-1], "loce", "full", "water"
    images = arrays[f"boat.test.{group}.image"]
    masks = arrays[f"boat.test.{group}.mask"]
    vec = arrays[f"boat.{layer}.{method}.{kind}.vector"]
    _, acts = jax.jit(net.apply)(images)
    want = _np_ious(vec, acts[layer], masks)
    k = res["vector_order"].index([method, kind])
    got = arrays[f"boat.{layer}.{group}.iou"][:, k]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    row = [r for r in res["iou"] if (r["concept"], r["layer"], r["method"], r["train"],
                                     r["test"]) == ("boat", layer, method, kind, group)]  # fmt: skip
    assert len(row) == 1 and row[0]["count"] == len(want)
    np.testing.assert_allclose(row[0]["mean"], want.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(row[0]["std"], want.std(ddof=1), rtol=1e-3, atol=1e-6)
    # A vector that predicts pixels: the same NumPy IoU as `bias.view_ious`.
    flip = -vec
    acts_nchw = np.asarray(acts[layer]).transpose(0, 3, 1, 2)
    lib = np.asarray(bias.view_ious(flip[None], acts_nchw, masks))[:, 0]
    np.testing.assert_allclose(lib, _np_ious(flip, acts[layer], masks), rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    return res


def test_script_end_to_end(job_dir, tmp_path, capsys):
    backbone = str(job_dir / "backbones" / "small_cnn")
    eval_background.main(["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
                          f"--config.backbone={backbone}"])  # fmt: skip
    out = capsys.readouterr().out
    assert "[background] boat: fits" in out and "### Boat on road" in out
    res = _check_cell(tmp_path, load_trained(backbone))
    cfg = background_config.get_config("tiny")
    assert res["test_groups"][0] == "vanilla" and "road" in res["test_groups"]
    n_cells = (len(cfg.concepts) * len(cfg.layers) * len(cfg.methods)
               * len(cfg.train_kinds) * len(res["test_groups"]))  # fmt: skip
    assert len(res["iou"]) == n_cells
    assert all(0.0 <= r["mean"] <= 1.0 for r in res["iou"])
    check = res["bias_check"]
    assert len(check) == len(cfg.layers) * len(cfg.methods)
    for c in check:
        assert c["vanilla_drop"] == (c["water"]["vanilla"] > c["road"]["vanilla"])
    m = np.asarray(res["shift_matrix"][f"boat.{cfg.layers[0]}.loce"])
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    assert all(_is_png(tmp_path / f) for f in FIGURES)
    md = (tmp_path / study.REPORT).read_text()
    assert not re.search(r"\bNone\b|\bnan\b", md)
    assert "**road (boat on road)**" in md
    for part, _ in report.RECONSTRUCTIONS:
        assert part in md


def _np_filter(net, cfg, seed, n):
    """The presence filter recomputed: candidates, sigmoid rule, first n kept
    per group, counted against the truth in NumPy."""
    cand = pools.synthaerial_scene_pool(
        n * cfg.pool.candidates, size=net.image_size, seed=seed,
        groups=tuple(cfg.pool.groups), scene_fraction=cfg.pool.scene_fraction,
    )  # fmt: skip
    logits = np.asarray(jax.jit(net.apply)(cand.images)[0], np.float64)
    prob = 1 / (1 + np.exp(-logits[:, net.outputs.index("has_boat")]))
    return cand, prob


def test_stage_on_a_small_config(job_dir):
    config = background_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    config.concepts, config.methods = ("boat",), ("loce",)
    config.train_kinds = ("vanilla", "full")
    config.pool.groups = ("water", "road")
    net = load_trained(str(job_dir / "backbones" / "small_cnn"))
    # A threshold that rejects the most boat-like fifth of the candidates.
    _, prob = _np_filter(net, config, config.pool.seed, config.pool.train_per_group)
    config.pool.filter_threshold = float(np.quantile(prob, 0.8))
    stage_dir = job_dir / "background"
    stage_dir.mkdir()
    out = stage_background.background(config, str(stage_dir))
    n = config.pool.train_per_group
    cand, prob = _np_filter(net, config, config.pool.seed, n)
    rejected = prob > config.pool.filter_threshold
    truth = cand.objects[:, synthaerial.CONCEPTS.index("boat")]
    used = np.concatenate([np.flatnonzero(~rejected & (cand.groups == g))[:n]
                           for g in range(len(cand.group_names))])  # fmt: skip
    got = out["results"]["filtering"]["boat"]["train"]
    assert 0 < got["rejected"] == rejected.sum() < len(rejected)
    assert got["true_rejections"] == (rejected & truth).sum()
    assert got["missed"] == (~rejected & truth).sum() and got["showing"] == truth.sum()
    assert got["used"] == len(used) == 2 * n
    assert got["used_showing"] == truth[used].sum()
    assert "| boat | train |" in out["markdown"]
    assert "| **road (boat on road)** |" in out["markdown"]
    assert not re.search(r"\bNone\b|\bnan\b", out["markdown"])
    assert "Reconstructions" not in out["markdown"]  # listed by the main report
    assert out["figures"] and all(_is_png(stage_dir / f) for f in out["figures"])
    assert "tested on 6 held-out objects in 3 test groups" in out["summary"]
    assert out["reconstructions"] and all(len(r) == 2 for r in out["reconstructions"])
    assert any("background.data.num_test" in c for c in out["caveats"])
    json.dumps(out)  # the main job stores it as JSON


@pytest.mark.parametrize(
    "override, named",
    [("--config.concepts=('ship',)", "concepts"),
     ("--config.methods=('tcav',)", "methods"),
     ("--config.train_kinds=('full',)", "train_kinds"),
     ("--config.pool.groups=('lava',)", "pool.groups"),
     ("--config.views.resize=stretch", "views.resize")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    with pytest.raises(SystemExit) as e:
        eval_background.main(["--config", f"{CONFIG}:tiny", "--workdir",
                              str(tmp_path / "w"), override])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()
