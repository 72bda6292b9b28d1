"""The comparison study end to end: `eval.compare` on the tiny config with a
tiny trained small_cnn and the packaged MobileNetV2, checked against
independent recomputations from the saved files.

The self-comparison's similarity matrix is rebuilt with NumPy set IoUs of
the saved masks and its diagonal must be every row's maximum; one IoU cell
and one Pearson cell of the cross-network pair are recomputed by plain
loops (`np.corrcoef`); the best matches and their random-assignment
expectation are recomputed from the saved matrices.
"""

import json
import os

import numpy as np
import pytest

from configs import compare as compare_config
from eval import compare as eval_compare
from eval.stages import comparison as stage_comparison
from jaxcxai.concepts.comparison import report, study
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "compare.py")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, tiny_backbone):
    """A tiny trained small_cnn (30 steps on 32 x 32 scenes)."""
    root = tmp_path_factory.mktemp("job")
    return tiny_backbone(root / "small_cnn")


def _iou(a, b):
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _pearson(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return np.corrcoef(x, y)[0, 1]


def _pair(res, a, b):
    return next(p for p in res["pairs"] if (p["a"], p["b"]) == (a, b))


def _check_self_diagonal(res, out):
    masks = out["small_cnn.masks"]  # (L, K, N, G, G)
    nl, k = masks.shape[:2]
    sim = np.array(
        [
            [np.mean([_iou(masks[i, c], masks[j, c]) for c in range(k)]) for j in range(nl)]
            for i in range(nl)
        ]
    )  # fmt: skip
    pair = _pair(res, "small_cnn", "small_cnn")
    np.testing.assert_allclose(pair["iou"]["matrix"], sim, atol=1e-6)
    assert np.all(np.diag(sim) >= sim.max(axis=1) - 1e-9)
    for kind in ("iou", "pearson", "cka"):
        m = np.asarray(pair[kind]["matrix"])
        match = pair[kind]["matches"]["a_to_b"]
        untied = ~np.asarray(match["tied"])
        assert np.all(np.diag(m) >= m.max(axis=1) - 1e-6), kind
        np.testing.assert_array_equal(np.asarray(match["best"])[untied],
                                      np.arange(nl)[untied])  # fmt: skip
        assert match["mean_distance"] in (0.0, None)
    assert res["checks"]["self"]["passed"]
    assert all(v["passed"] for v in res["checks"]["self"]["small_cnn"].values())


def _check_cross_cells(res, out, sims):
    a, b = out["small_cnn.masks"], out["mobilenet_v2.masks"]
    pa, pb = out["small_cnn.projections"], out["mobilenet_v2.projections"]
    pair = _pair(res, "small_cnn", "mobilenet_v2")
    i, j = 1, a.shape[0] - 1  # small_cnn's middle layer vs MobileNetV2's last
    iou = np.mean([_iou(a[i, c], b[j, c]) for c in range(a.shape[1])])
    np.testing.assert_allclose(pair["iou"]["matrix"][i][j], iou, atol=1e-6)
    np.testing.assert_allclose(sims["small_cnn|mobilenet_v2|iou"][i, j], iou, atol=1e-6)
    r = np.mean([_pearson(pa[i, c], pb[j, c]) for c in range(pa.shape[1])])
    np.testing.assert_allclose(pair["pearson"]["matrix"][i][j], r, atol=1e-5)
    # Best matches and the random-assignment expectation from the matrix.
    for kind in ("iou", "pearson", "cka"):
        m = np.asarray(pair[kind]["matrix"])
        match = pair[kind]["matches"]["a_to_b"]
        da = np.arange(m.shape[0]) / (m.shape[0] - 1)
        db = np.arange(m.shape[1]) / (m.shape[1] - 1)
        rows = [r for r in range(m.shape[0]) if not match["tied"][r]]
        best = m.argmax(axis=1)
        np.testing.assert_array_equal(np.asarray(match["best"])[rows], best[rows])
        if rows:
            want = np.mean(np.abs(da - db[best])[rows])
            rand = np.mean(np.abs(da[:, None] - db[None])[rows])
            np.testing.assert_allclose(match["mean_distance"], want, atol=1e-6)
            np.testing.assert_allclose(match["random_distance"], rand, atol=1e-9)
    rel = res["checks"]["relative_depth"]["iou"]
    assert 0.0 < rel["p_value"] <= 1.0 and rel["rows"] > 0


def test_script_end_to_end(backbone, tmp_path, capsys):
    missing = str(tmp_path / "no_backbone_here")
    eval_compare.main(["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
                       f"--config.backbone={backbone}", "--config.pretrained_size=32",
                       f"--config.backbones=('{missing}',)"])  # fmt: skip
    assert "Planted checks" in capsys.readouterr().out
    res = json.loads((tmp_path / study.RESULTS).read_text())
    assert list(res["networks"]) == ["small_cnn", "mobilenet_v2"]
    assert res["skipped"] == [missing]
    assert res["networks"]["mobilenet_v2"]["layers"] == [
        "features.0", "features.9", "features.18"
    ]  # fmt: skip
    assert len(res["pairs"]) == 3  # A = A twice, A vs B once
    out = study.load_npz(str(tmp_path / study.OUTPUTS))
    sims = study.load_npz(str(tmp_path / study.SIMILARITY))
    n = compare_config.get_config("tiny").data.num_test
    assert out["small_cnn.masks"].shape[1:] == (8, n, 32, 32)
    assert out["small_cnn.masks"].dtype == bool
    _check_self_diagonal(res, out)
    _check_cross_cells(res, out, sims)
    md = (tmp_path / study.REPORT).read_text()
    assert "**Reconstructions**" in md and "0/0 = 0" in md
    assert "None" not in md and "nan" not in md
    for fig in ("similarity_small_cnn_vs_mobilenet_v2.png", "best_matches.png",
                "similarity_small_cnn_vs_small_cnn.png", "probe_iou.png"):  # fmt: skip
        with open(tmp_path / fig, "rb") as f:
            assert f.read(8) == PNG and os.path.getsize(f.name) > 1000, fig
    caveats = stage_comparison.caveats(compare_config.get_config("tiny"), res)
    assert any("fewer than 20" in c for c in caveats)  # 24 held-out scenes
    assert any("skipped" in c for c in caveats)
    json.dumps(caveats)


@pytest.mark.parametrize(
    "override, named",
    [("--config.pretrained=('resnet18',)", "pretrained must be distinct names"),
     ("--config.pretrained_size=48", "multiple of 32"),
     ("--config.layers=('small_cnn',)", "is not 'network:layer'"),
     ("--config.cav.pool='max'", "cav.pool must be one of"),
     ("--config.num_layers=1", "num_layers=1 must be >= 2")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    work = tmp_path / "w"
    with pytest.raises(SystemExit) as e:
        eval_compare.main(["--config", f"{CONFIG}:tiny", "--workdir", str(work),
                           override])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not work.exists()  # rejected before anything is written


def test_planted_checks_on_known_matrices():
    # A (3 layers) vs B (5 layers): rows match B at equal relative depth.
    sim = np.full((3, 5), 0.1)
    sim[[0, 1, 2], [0, 2, 4]] = 0.9
    own = np.eye(3) + 0.1
    results = {
        "networks": {"a": {"depth": [0, 0.5, 1]},
                     "b": {"depth": [0, 0.25, 0.5, 0.75, 1]}},
        "pairs": [{"a": "a", "b": "a", "self": True,
                   "iou": {"matrix": own, "matches": report.matches(own, True)}},
                  {"a": "a", "b": "b", "self": False,
                   "iou": {"matrix": sim, "matches": report.matches(sim, False)}}],
    }  # fmt: skip
    checks = report.planted_checks(results, study.CheckSettings(draws=2000), 0)
    assert checks["self"]["passed"] and checks["self"]["a"]["iou"]["tied"] == 0
    rel = checks["relative_depth"]["iou"]
    # A→B rows all at distance 0; B→A: columns 1 and 3 are all 0.1 (tied).
    assert rel["rows"] == 3 + 3 and rel["mean_distance"] == 0.0
    assert rel["passed"] and rel["p_value"] < 0.01
    assert checks["relative_depth"]["pearson"]["passed"] is None  # no such pairs
    flow = results["pairs"][0]["iou"]["matches"]["flow"]
    assert flow["tied"] == [True, True, True]  # off-diagonal all 0.1
