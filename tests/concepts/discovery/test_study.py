"""The discovery study end to end: `eval.discover` on the tiny config and the
main-job stage `discovery`, with a tiny trained small_cnn.

Reported numbers are checked against independent recomputations from the
saved files: R² in float64 NumPy from the stored codes and components and
activations re-extracted by calling the backbone directly; seed stability
by scipy's `linear_sum_assignment` on the stored components; localization
IoUs from presence maps upsampled by scikit-image and NumPy quantiles;
mean-difference CAV cosines by a per-concept NumPy loop; and conv3's scene
fidelity from SmallCNN's closed-form head (spatial mean, then `fc`).
"""

import json
import os

import jax
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from skimage.transform import resize

from configs import discover as discover_config
from eval import discover as eval_discover
from eval.stages import discovery as stage_discovery
from jaxcxai.concepts.discovery import evaluation, quality, study
from jaxcxai.data import synthaerial
from jaxcxai.training.backbone import load_trained
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "discover.py")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_backbone):
    """A main-job-like workdir holding backbones/small_cnn (tiny, 30 steps)."""
    root = tmp_path_factory.mktemp("job")
    tiny_backbone(root / "backbones" / "small_cnn")
    return root


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == PNG


def _load(work):
    res = json.loads((work / study.RESULTS).read_text())
    return (
        res,
        study.load_npz(str(work / study.DATA)),
        study.load_npz(str(work / study.DICTIONARIES)),
    )


def _check_files_and_masks(work):
    res, data, _ = _load(work)
    cfg = discover_config.get_config("tiny")
    assert (work / study.REPORT).read_text().count("| conv3 | NMF (ICE) |") == 1
    for layer in cfg.report.reference_layers:
        for m in cfg.methods:
            assert _is_png(work / f"references_{layer}.png")
    for m in cfg.methods:
        assert _is_png(work / f"iou_{m}.png")
    # Masks: class masks for objects, visible background regions for bg:.
    g = synthaerial.generate(cfg.data.num_images, size=32, seed=cfg.data.seed)
    np.testing.assert_array_equal(data["image"], g["image"])
    names = list(data["concepts"])
    car = g["class_mask"] == synthaerial.CONCEPTS.index("car") + 1
    np.testing.assert_array_equal(data["masks"][..., names.index("car")], car)
    water = (g["background_map"] == synthaerial.BACKGROUNDS.index("water")) & (
        g["class_mask"] == 0
    )
    np.testing.assert_array_equal(data["masks"][..., names.index("bg:water")], water)
    assert res["concept_images"]["car"] == int(car.any((1, 2)).sum())


def _check_r2_stability_and_cavs(work, net):
    res, data, dicts = _load(work)
    _, acts = jax.jit(net.apply)(data["image"])
    names = list(data["concepts"])
    for layer in res["layers"]:
        a = np.asarray(acts[layer], np.float64)
        x = a.reshape(-1, a.shape[-1])
        # Coverage of each layer cell by each mask, by an explicit loop.
        h = a.shape[1]
        s = data["masks"].shape[1] // h
        cover = np.zeros(a.shape[:3] + (len(names),))
        for i in range(h):
            for j in range(h):
                block = data["masks"][:, i * s : (i + 1) * s, j * s : (j + 1) * s]
                cover[:, i, j] = block.mean(axis=(1, 2))
        w = cover.reshape(-1, len(names))
        for m in res["methods"]:
            r = res["dictionaries"][layer][m]
            comps = dicts[f"{layer}.{m}.components"].astype(np.float64)
            mean = dicts[f"{layer}.{m}.mean"][0].astype(np.float64)
            codes = dicts[f"{layer}.{m}.codes"].astype(np.float64)
            rec = codes @ comps[0] + mean
            r2 = 1 - ((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
            np.testing.assert_allclose(r["r2"][0], r2, atol=2e-4)
            # Seed stability: Hungarian on the cosine matrix of each pair.
            unit = comps / np.linalg.norm(comps, axis=-1, keepdims=True)
            pairs = []
            for p in range(len(comps)):
                for q in range(p + 1, len(comps)):
                    cos = unit[p] @ unit[q].T
                    rows, cols = linear_sum_assignment(-cos)
                    pairs.append(cos[rows, cols].mean())
            np.testing.assert_allclose(
                r["stability"]["mean"], np.mean(pairs), atol=1e-6
            )
            # Mean-difference CAV of each present concept: best cosine.
            for c, name in enumerate(names):
                if not w[:, c].any():
                    continue
                v = (w[:, c] @ x) / w[:, c].sum() - ((1 - w[:, c]) @ x) / (
                    1 - w[:, c]
                ).sum()
                best = (unit[0] @ v / np.linalg.norm(v)).max()
                got = r["cav_match_seed0"][name]["best_cos"]
                np.testing.assert_allclose(got, best, atol=1e-4)


def _check_iou(work):
    res, data, dicts = _load(work)
    masks = data["masks"]
    n, size = masks.shape[:2]
    area = masks.mean(axis=(0, 1, 2))
    thr = res["iou_threshold"]
    layer = "conv3"
    hw = res["layer_shapes"][layer][:2]
    for m in res["methods"]:
        r = res["dictionaries"][layer][m]
        codes = dicts[f"{layer}.{m}.codes"].astype(np.float64)
        pres = codes.reshape(n, *hw, -1)
        got = np.asarray(r["iou_seed0"])
        for j in range(pres.shape[-1]):
            up = np.stack([resize(pres[i, ..., j], (size, size), order=1, mode="edge",
                                  anti_aliasing=False) for i in range(n)])  # fmt: skip
            for c in range(masks.shape[-1]):
                on = up > np.quantile(up, 1 - area[c])
                union = (on | masks[..., c]).sum()
                want = (on & masks[..., c]).sum() / union if union else 0.0
                np.testing.assert_allclose(got[j, c], want, atol=0.01)
        best = np.asarray(r["best_iou"])
        np.testing.assert_allclose(best[0], got.max(0), atol=1e-9)
        rec = {c: int((best[:, i] >= thr).sum()) for i, c in enumerate(res["concepts"])}
        assert {c: v["seeds"] for c, v in r["recoveries"].items()} == {
            c: k for c, k in rec.items() if k
        }


def _check_conv3_fidelity(work, net):
    """conv3's scene agreement from SmallCNN's closed-form head."""
    res, data, dicts = _load(work)
    k_fc = np.asarray(net.variables["params"]["fc"]["kernel"], np.float64)
    b_fc = np.asarray(net.variables["params"]["fc"]["bias"], np.float64)
    _, acts = jax.jit(net.apply)(data["image"])
    a = np.asarray(acts["conv3"], np.float64)
    ncls = net.meta.num_classes

    def scenes(act):  # conv3 -> spatial mean -> fc (SmallCNN)
        return (act.mean(axis=(1, 2)) @ k_fc + b_fc)[:, :ncls].argmax(-1)

    pred = scenes(a)
    for m in res["methods"]:
        fid = res["dictionaries"]["conv3"][m]["fidelity"]
        acc = np.mean(pred == data["scene"])
        np.testing.assert_allclose(fid["accuracy_original"], acc, atol=1e-9)
        comps = dicts[f"conv3.{m}.components"][0].astype(np.float64)
        mean = dicts[f"conv3.{m}.mean"][0].astype(np.float64)
        rec = (dicts[f"conv3.{m}.codes"].astype(np.float64) @ comps + mean).reshape(
            a.shape
        )
        agree = np.mean(scenes(rec) == pred)
        assert abs(fid["agreement"][0] - agree) <= 1 / len(pred) + 1e-9


def test_script_end_to_end(job_dir, tmp_path):
    # One test (not one per check): the run is shared without a module
    # fixture, which pytest-xdist would repeat on every worker.
    backbone = str(job_dir / "backbones" / "small_cnn")
    eval_discover.main(["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
                        f"--config.backbone={backbone}"])  # fmt: skip
    net = load_trained(backbone)
    _check_files_and_masks(tmp_path)
    _check_r2_stability_and_cavs(tmp_path, net)
    _check_iou(tmp_path)
    _check_conv3_fidelity(tmp_path, net)


def test_stage_on_tiny_config(job_dir):
    config = discover_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    config.layers = ("conv3",)
    config.report.reference_layers = ("conv3",)
    config.methods = ("nmf",)
    config.nmf.iters = 10
    stage_dir = job_dir / "discovery"
    stage_dir.mkdir()
    out = stage_discovery.discovery(config, str(stage_dir))
    assert "| conv3 | NMF (ICE) |" in out["markdown"]
    assert "Planted concepts recovered per layer" in out["markdown"]
    assert "None" not in out["markdown"] and "nan" not in out["markdown"]
    assert out["figures"] and all(_is_png(stage_dir / f) for f in out["figures"])
    assert "24 SynthAerial scenes" in out["summary"]
    assert out["reconstructions"] and all(len(r) == 2 for r in out["reconstructions"])
    # 24 scenes: several concepts are in fewer than 20 of them, 2 seeds < 5.
    assert any("fewer than 20" in c for c in out["caveats"])
    assert any("2 seeds" in c for c in out["caveats"])
    json.dumps(out)  # the main job stores it as JSON


@pytest.mark.parametrize(
    "override, named",
    [("--config.methods=('pca',)", "methods"),
     ("--config.report.reference_layers=('conv1',)", "reference_layers"),
     ("--config.num_seeds=1", "num_seeds")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    with pytest.raises(SystemExit) as e:
        eval_discover.main(["--config", f"{CONFIG}:tiny", "--workdir",
                            str(tmp_path / "w"), override])  # fmt: skip
    assert e.value.code == 2
    assert named in capsys.readouterr().err


def test_host_area_thresholds_equal_the_library():
    rng = np.random.default_rng(0)
    pres = rng.gamma(1.0, size=(6, 4, 4, 3)).astype(np.float32)
    masks = rng.random((6, 16, 16, 4)) < np.array([0.02, 0.1, 0.4, 0.0])
    for rule, q in (("area", "area"), ("quantile", 0.05)):
        got = evaluation.localization_iou(pres, masks, threshold=rule, top_quantile=q)
        want = quality.localization_iou(pres, masks, top_quantile=q)
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert not got[:, 3].any()  # an empty mask has IoU 0
    pres[0, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="presence has 1 non-finite"):
        evaluation.localization_iou(pres, masks)
    with pytest.raises(ValueError, match="acts"):
        evaluation.mean_difference_vectors(pres[..., :2], masks[:, :4, :4])
