"""The stability study end to end: `eval.stability` on the tiny config and the
main-job stage `stability`, with a tiny trained small_cnn.

Reported numbers are checked against independent recomputations from the
saved files: consistency in float64 NumPy from the saved CAV weights,
separation from activations re-extracted by calling the backbone and views
taken by NumPy (a 3D cell, fitted in the pool's row-span basis, included),
the concept labels from SynthAerial's object records, and the planted
checks from the results' rows. Bad settings stop with an error naming the
field before anything is written.
"""

import json
import os

import jax
import numpy as np
import pytest

from configs import stability as stability_config
from eval import stability as eval_stability
from eval.stages import stability as stage_stability
from jaxcxai import attribution as attr
from jaxcxai.concepts.stability import report, run, runs, study
from jaxcxai.data import synthaerial
from jaxcxai.training.backbone import load_trained
from tests.concepts.stability.nets import C, H, W, net, x_of
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "stability.py")
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("retrieval_vs_layer.png", "consistency_vs_samples.png",
           "attribution_sign_flips.png")  # fmt: skip


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


def _view(acts, dim):  # (N, h, w, C) -> the NumPy view
    if dim == "1d":
        return acts.mean(axis=(1, 2))
    if dim == "2d":
        return acts.mean(axis=3).reshape(len(acts), -1)
    return acts.reshape(len(acts), -1)


def _check_labels(data, cfg):
    g = synthaerial.generate(cfg.data.num_train + cfg.data.num_heldout, size=32,
                             seed=cfg.data.seed, scenes=cfg.data.scenes)  # fmt: skip
    np.testing.assert_array_equal(data["image"], g["image"])
    names = list(data["concepts"])
    car = synthaerial.CONCEPTS.index("car") + 1
    red = [
        any(c == car and s == 0 for c, s in zip(g["obj_class"][i], g["obj_subconcept"][i]))
        for i in range(len(g["image"]))
    ]  # fmt: skip
    np.testing.assert_array_equal(data["labels"][:, names.index("car:red")], red)
    lot = g["scene"] == synthaerial.SCENES.index("parking_lot")
    np.testing.assert_array_equal(data["labels"][:, names.index("parking_lot")], lot)


def _check_cells(work, net_):
    res = json.loads((work / study.RESULTS).read_text())
    data = study.load_npz(str(work / study.DATA))
    cavs = study.load_npz(str(work / study.CAVS))
    n_train, names = res["num_train"], list(data["concepts"])
    _, acts = jax.jit(net_.apply)(data["image"])
    rows = {
        (r["concept"], r["layer"], r["dim"], r["samples"]): r for r in res["retrieval"]
    }
    # A 1D cell and a 3D cell (wider than the pool: fitted in its row span).
    for concept, layer, dim in (("car", "conv3", "1d"), ("car:red", "conv2", "3d")):
        k, n = names.index(concept), max(res["samples"])
        key = f"{concept}.{layer}.{dim}.n{n}"
        w, b = cavs[f"{key}.weight"].astype(np.float64), cavs[f"{key}.bias"]
        unit = w / np.linalg.norm(w, axis=1, keepdims=True)
        cos = unit @ unit.T
        r = len(w)
        want_k = (cos.sum() - r) / (r * (r - 1))
        row = rows[concept, layer, dim, n]
        np.testing.assert_allclose(row["consistency"], want_k, atol=2e-4)
        # Held-out separation: accuracy of w.f + b > 0 on the saved rows.
        f = _view(np.asarray(acts[layer], np.float64), dim)[n_train:]
        pos, neg = data["heldout_rows"][k]
        assert data["labels"][n_train:][pos, k].all()
        assert not data["labels"][n_train:][neg, k].any()
        acc = [np.mean(np.r_[f[pos] @ w[i] + b[i] > 0, f[neg] @ w[i] + b[i] <= 0])
               for i in range(r)]  # fmt: skip
        np.testing.assert_allclose(row["run_separation"], acc, atol=1 / len(pos) + 1e-9)
        np.testing.assert_allclose(
            row["stability"], row["separation"] * row["consistency"], rtol=1e-6
        )
        # Each run's rows are n positives and n negatives of the pool.
        pi, ni = cavs[f"{concept}.n{n}.pos_rows"], cavs[f"{concept}.n{n}.neg_rows"]
        assert pi.shape == ni.shape == (r, n)
        assert data["labels"][pi, k].all() and not data["labels"][ni, k].any()
    return res


def _check_planted(res):
    """The three planted checks, recomputed from the rows."""
    rows = res["retrieval"]
    cell = {(r["concept"], r["layer"], r["dim"], r["samples"]): r for r in rows}
    lo, hi = min(res["samples"]), max(res["samples"])
    rise = [(cell[c, lay, d, hi]["consistency"], r["consistency"])
            for (c, lay, d, n), r in cell.items() if n == lo and (c, lay, d, hi) in cell]  # fmt: skip
    views = [(r["consistency"], cell[c, lay, "3d", n]["consistency"])
             for (c, lay, d, n), r in cell.items() if d == "1d"]  # fmt: skip
    subs = [(cell[c.split(":")[0], lay, d, n]["stability"], r["stability"])
            for (c, lay, d, n), r in cell.items() if ":" in c]  # fmt: skip
    for check, pairs in zip(res["planted"], (rise, views, subs)):
        a, b = np.asarray(pairs).T
        agree = int((a > b).sum())
        assert check["pairs"] == len(pairs) and check["agree"] == agree
        assert check["holds"] == bool(np.mean(a - b) > 0 and agree > len(pairs) / 2)
    assert [c["check"] for c in res["planted"]] == list(report.CHECKS)


def test_script_end_to_end(job_dir, tmp_path, capsys):
    backbone = str(job_dir / "backbones" / "small_cnn")
    eval_stability.main(["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
                         f"--config.backbone={backbone}"])  # fmt: skip
    out = capsys.readouterr().out
    assert "[stability] retrieval conv2 3d" in out and "Planted checks" in out
    cfg = stability_config.get_config("tiny")
    _check_labels(study.load_npz(str(tmp_path / study.DATA)), cfg)
    res = _check_cells(tmp_path, load_trained(backbone))
    _check_planted(res)
    assert all(_is_png(tmp_path / f) for f in FIGURES)
    md = (tmp_path / study.REPORT).read_text()
    assert "None" not in md and "nan" not in md
    for part, _ in report.RECONSTRUCTIONS:
        assert part in md
    a = res["attribution"]
    assert set(a["batch"]) == set(cfg.layers) and len(a["target"]) == 4
    for layer in cfg.layers:
        for dim in ("1d", "3d"):
            for mode in ("plain", "smooth"):
                assert 0.0 <= a[layer][dim][mode]["sign_flip_rate"] <= 1.0
    if res["backend"] == "cpu":
        assert all(v["max_abs_diff"] == 0.0 for v in a["batch"].values())


def test_stage_on_a_small_config(job_dir):
    config = stability_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    config.layers, config.retrieval.samples = ("conv3",), (5,)
    config.retrieval.dims = ("1d", "3d")
    config.attribution.num_images = 2
    stage_dir = job_dir / "stability"
    stage_dir.mkdir()
    out = stage_stability.stability(config, str(stage_dir))
    assert "| object | conv3 | 1D |" in out["markdown"]
    assert "None" not in out["markdown"] and "nan" not in out["markdown"]
    assert "Reconstructions" not in out["markdown"]  # listed by the main report
    assert out["figures"] and all(_is_png(stage_dir / f) for f in out["figures"])
    assert "120 pool + 60 held-out SynthAerial scenes" in out["summary"]
    assert out["reconstructions"] and all(len(r) == 2 for r in out["reconstructions"])
    assert any("R = 3 runs" in c for c in out["caveats"])
    # One sample count: nothing to compare for the first check.
    assert out["results"]["planted"][0]["holds"] is None
    json.dumps(out)  # the main job stores it as JSON


@pytest.mark.parametrize(
    "override, named",
    [("--config.subconcepts=('car:blue',)", "subconcepts"),
     ("--config.subconcepts=('tree:conifer',)", "parent"),
     ("--config.retrieval.dims=('4d',)", "retrieval.dims"),
     ("--config.retrieval.runs=1", "retrieval.runs"),
     ("--config.scenes=('airport',)", "scenes")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    with pytest.raises(SystemExit) as e:
        eval_stability.main(["--config", f"{CONFIG}:tiny", "--workdir",
                             str(tmp_path / "w"), override])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_span_features_fit_equals_the_full_view():
    """Views wider than the pool, fitted in its row-span basis: the same
    weights, biases and held-out projections as fitted on the raw features.
    (Shapes as in the tiny study: R = 3 runs of n = 15 at width 120.)"""
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(120, 200)).astype(np.float32) + rng.normal(size=200)
    held = rng.normal(size=(7, 200)).astype(np.float32)
    pi = np.stack([rng.choice(60, 15, replace=False) for _ in range(3)])
    ni = 60 + np.stack([rng.choice(60, 15, replace=False) for _ in range(3)])
    full = runs.fit_subsets(pool, pool, pi, ni, steps=50)
    z, zh, unmap = run.span_features(pool, held, 120)
    assert z.shape == (120, 120) and zh.shape == (7, 120)
    small = runs.fit_subsets(z, z, pi, ni, steps=50)  # as the study: one compile
    w_full, w_back = np.asarray(full.weight), unmap(np.asarray(small.weight))
    np.testing.assert_allclose(w_back, w_full, atol=2e-3 * np.abs(w_full).max())
    np.testing.assert_allclose(
        np.asarray(small.weight) @ zh.T, w_full @ held.T, atol=1e-3
    )
    np.testing.assert_allclose(small.bias, full.bias, atol=1e-4)
    # Narrow views are zero-padded.
    zp, _, unmap = run.span_features(pool[:, :20], held[:, :20], 120)
    assert zp.shape == (120, 120) and not zp[:, 20:].any()
    assert unmap(np.ones((2, 120))).shape == (2, 20)


def test_1d_cavs_tiled_as_3d_give_the_1d_attribution():
    f, *_ = net()
    x = x_of()
    rng = np.random.default_rng(2)
    v1, v3 = rng.normal(size=(2, C)), rng.normal(size=(3, H * W * C))
    by_dim = {"1d": {f"a{i}": (v, 5) for i, v in enumerate(v1)},
              "3d": {f"b{i}": (v, 5) for i, v in enumerate(v3)}}  # fmt: skip
    cav, spans = run._cav_stack(by_dim, (H, W, C))
    assert cav.shape == (5, H, W, C)
    got = np.asarray(attr.concept_attribution(f, x, "act", cav, kind="3d"))
    one = np.asarray(attr.concept_attribution(f, x, "act", v1, kind="1d"))
    three = np.asarray(attr.concept_attribution(f, x, "act", v3, kind="3d"))
    np.testing.assert_allclose(got[:, spans["1d"]], one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, spans["3d"]], three, rtol=1e-5, atol=1e-6)
