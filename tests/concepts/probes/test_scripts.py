"""Concept-probe scripts end to end (train.probes, eval.concepts), the main-job
stage, layer heads and the COCO / VOC data paths.

A tiny small_cnn is trained once per module. Reported numbers are checked
against float64 NumPy recomputations: set IoUs from the stored probes and
cached activations (bilinear upsampling written out by hand), TCAV scores of
the last conv layer from the closed-form gradient of SmallCNN's head (spatial
mean, then a linear layer), and p-values from a hand-written Student t-test.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
from scipy import stats as sps

from configs import cli
from configs import probes as probes_config
from eval import concepts as eval_concepts
from eval.stages import probes as stage_probes
from jaxcxai import features
from jaxcxai.concepts.probes import evaluation, run, tcav
from jaxcxai.concepts.probes import pipeline as probe_pipeline
from jaxcxai.concepts.probes import study as probe_study
from jaxcxai.data import synthaerial, voc
from jaxcxai.models.zoo import get_model
from jaxcxai.training.backbone import load_trained
from tests.paths import CONFIGS
from train import probes as train_probes

CONFIG = os.path.join(CONFIGS, "probes.py")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_backbone):
    """A main-job-like workdir holding backbones/small_cnn (tiny, 30 steps)."""
    root = tmp_path_factory.mktemp("job")
    tiny_backbone(root / "backbones" / "small_cnn")
    return root


def _bilinear_np(x, size):
    """PyTorch bilinear (align_corners=False) upsampling of (..., h, w), float64."""

    def matrix(n, m):
        a = np.zeros((m, n))
        for i in range(m):
            src = max((i + 0.5) * n / m - 0.5, 0.0)
            i0 = min(int(np.floor(src)), n - 1)
            i1 = min(i0 + 1, n - 1)
            a[i, i0] += 1 - (src - i0)
            a[i, i1] += src - i0
        return a

    rh, rw = matrix(x.shape[-2], size[0]), matrix(x.shape[-1], size[1])
    return np.einsum("Hh,...hw,Ww->...HW", rh, x, rw)


def _student_p(a, b):
    """Two-sided pooled-variance t-test p-value; None if undefined."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = len(a), len(b)
    sp2 = (((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / (na + nb - 2)
    if sp2 == 0:
        return None
    t = (a.mean() - b.mean()) / np.sqrt(sp2 * (1 / na + 1 / nb))
    return 2 * sps.t.sf(abs(t), na + nb - 2)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def test_layer_heads_continue_the_network():
    model = get_model("small_cnn", num_classes=5)
    x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3))
    variables = model.init(jax.random.key(1), x)
    logits, acts = model.apply(variables, x)
    for layer in ("conv1", "conv2", "conv3", "pool"):
        head = probe_pipeline.layer_head_fn(model, variables, layer, 16)
        np.testing.assert_allclose(head(acts[layer]), logits, rtol=1e-5, atol=1e-5)
    # Directional derivatives through the conv2 head vs central differences.
    head = probe_pipeline.layer_head_fn(model, variables, "conv2", 16)
    a = acts["conv2"]
    v = jax.random.normal(jax.random.key(2), (2, a[0].size))
    v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
    got = tcav.directional_derivatives(head, a, 3, v)
    eps = 1e-3
    for j in range(2):
        dv = v[j].reshape((1,) + a.shape[1:])
        fd = (head(a + eps * dv)[:, 3] - head(a - eps * dv)[:, 3]) / (2 * eps)
        np.testing.assert_allclose(got[j], fd, rtol=2e-2, atol=2e-3)
    with pytest.raises(KeyError, match="conv9"):
        probe_pipeline.layer_head_fn(model, variables, "conv9", 16)


@pytest.mark.slow
def test_resnet_layer_heads_continue_the_network():
    model = get_model("resnet18", num_classes=4)
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    variables = model.init(jax.random.key(1), x)
    logits, acts = model.apply(variables, x)
    for layer in ("maxpool", "layer2", "layer4", "avgpool"):
        head = probe_pipeline.layer_head_fn(model, variables, layer, 32)
        np.testing.assert_allclose(head(acts[layer]), logits, rtol=1e-4, atol=1e-4)
    assert probe_pipeline.linear_head(model, "layer4")
    assert not probe_pipeline.linear_head(model, "layer3")


def test_concept_masks_and_sets():
    cls = np.array([[[0, 1], [2, 1]], [[3, 3], [0, 0]]])
    m = probe_pipeline.concept_masks(cls, [1, 3, 5])
    assert m.shape == (2, 3, 2, 2) and m.dtype == np.uint8
    np.testing.assert_array_equal(m[0, 0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(m[1, 1], [[1, 1], [0, 0]])
    assert not m[:, 2].any()
    present = np.zeros((10, 3), bool)
    present[:6, 0] = present[2:5, 1] = present[9, 2] = True
    sets = probe_pipeline.sample_sets(present, 5, 4, 3, seed=0)
    np.testing.assert_array_equal(sets["concepts"], [0, 1])  # 2 has one image
    assert sets["concept_rows"].shape == (2, 3)  # lowered to concept 1's count
    for k, rows in zip(sets["concepts"], sets["concept_rows"]):
        assert present[rows, k].all() and len(set(rows)) == len(rows)
    assert sets["random_rows"].shape == (3, 4)


def test_scripts_end_to_end(job_dir, tmp_path):
    backbone = str(job_dir / "backbones" / "small_cnn")
    config = probes_config.get_config("tiny")
    args = ["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
            f"--config.backbone={backbone}"]  # fmt: skip
    train_probes.main(args)
    eval_concepts.main(args)
    for name in ("probes.json", "net2vec.npz", "tcav.npz", "data.npz",
                 "concepts_report.md", "concepts_results.json"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    res = json.loads((tmp_path / "concepts_results.json").read_text())
    for fig in ("net2vec_iou.png", "tcav_scores.png", "concept_masks.png"):
        assert _is_png(tmp_path / fig), fig
    report = (tmp_path / "concepts_report.md").read_text()
    assert "| concept | held-out images | conv2 | conv3 | best layer |" in report

    # Held-out masks are SynthAerial's class masks of the test seed.
    data = probe_study.load_npz(str(tmp_path / "data.npz"))
    g = synthaerial.generate(config.data.num_test, size=32, seed=config.data.test_seed)
    for k, c in enumerate(config.concepts):
        want = g["class_mask"] == synthaerial.CONCEPTS.index(c) + 1
        np.testing.assert_array_equal(data["test_masks"][:, k], want)

    # Set IoUs recomputed in float64 from the stored probes and activations.
    probes = probe_study.load_npz(str(tmp_path / "net2vec.npz"))
    cache = features.FeatureCache(tmp_path / "features" / "test")
    masks = data["test_masks"] > 0
    for layer in config.layers:
        acts = np.asarray(cache[layer], np.float64)
        w, b = probes[f"{layer}.w"].astype(np.float64), probes[f"{layer}.b"]
        z = np.einsum("nhwc,krc->krnhw", acts, w) + b[..., None, None, None]
        pred = _bilinear_np(z, masks.shape[-2:]) > 0  # sigmoid > 0.5
        t = masks.transpose(1, 0, 2, 3)[:, None]
        iou = ((pred & t).sum((2, 3, 4)) + 1e-6) / ((pred | t).sum((2, 3, 4)) + 1e-6)
        for k, c in enumerate(config.concepts):
            got = res["net2vec"][layer][c]
            np.testing.assert_allclose(got["set_iou_runs"], iou[k], atol=0.02)
            assert 0 <= got["aggregated_iou"] <= 1
    best = res["best_layer"]
    assert set(best) == set(config.concepts)
    assert all(n is None or n in config.layers for n in best.values())

    # TCAV: conv3 -> mean -> fc, so d logit_t / d a[h, w, :] = W[:, t] / (h w)
    # for every example: each CAV's score is 1 if v . g > 0, else 0.
    variables = load_trained(backbone).variables
    kernel = np.asarray(variables["params"]["fc"]["kernel"], np.float64)
    cavs = probe_study.load_npz(str(tmp_path / "tcav.npz"))
    kept = [config.concepts[int(k)] for k in cavs["concepts"]]
    h, w_, ch = cache.shape("conv3")[1:]
    tc, num_tests = res["tcav"], res["tcav_num_tests"]
    assert res["tcav_linear_head_layers"] == ["conv3"]
    assert tc and num_tests == len(tc["conv3"]) * len(config.layers)
    for c, r in tc["conv3"].items():
        t = synthaerial.SCENES.index(r["target"])
        g = np.broadcast_to(kernel[:, t] / (h * w_), (h, w_, ch)).reshape(-1)
        d = cavs["conv3.direction"][kept.index(c)].astype(np.float64)
        np.testing.assert_array_equal(r["scores"], (d @ g > 0).astype(float))
        rand = cavs["conv3.random_direction"].astype(np.float64) @ g > 0
        np.testing.assert_array_equal(r["random_scores"], rand.astype(float))
    for layer in config.layers:
        for r in tc[layer].values():
            assert all(0 <= s <= 1 for s in r["scores"] + r["random_scores"])
            p = _student_p(r["scores"], r["random_scores"])
            if p is None:
                assert r["p"] is None and not r["significant"]
                continue
            assert 0 <= r["p"] <= 1 and 0 <= r["p_corrected"] <= 1
            np.testing.assert_allclose(r["p"], p, rtol=1e-6)
            np.testing.assert_allclose(r["p_corrected"], min(1, p * num_tests),
                                       rtol=1e-6)  # fmt: skip
            assert r["significant"] == (min(1, p * num_tests) < 0.05)


def test_stage_on_tiny_config(job_dir):
    config = probes_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    config.layers = ("conv3",)
    config.net2vec.epochs = 1
    stage_dir = job_dir / "probes"
    stage_dir.mkdir()
    out = stage_probes.probes(config, str(stage_dir))
    assert "| concept | held-out images | conv3 | best layer |" in out["markdown"]
    assert "TCAV" in out["markdown"]
    assert out["figures"] and all(_is_png(stage_dir / f) for f in out["figures"])
    iou = out["results"]["net2vec"]["conv3"]
    assert all(0 <= v["set_iou_mean"] <= 1 for v in iou.values())
    json.dumps(out)  # the main job stores it as JSON


def _square(x0, y0, x1, y1):
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def _write_coco(root):
    """Two 32 x 32 PNGs; a cat square in both, a dog square in the second."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(root / name)
        files.append({"id": i + 1, "file_name": name, "height": 32, "width": 32})
    anns = []
    for j, (aid, image_id, x0, y0, x1, y1) in enumerate(
        [(1, 1, 4, 10, 12, 20), (2, 2, 16, 0, 28, 8), (3, 2, 2, 20, 10, 30)]
    ):
        anns.append({"id": aid, "image_id": image_id, "category_id": 17 if j < 2 else 18,
                     "segmentation": [_square(x0, y0, x1, y1)], "iscrowd": 0,
                     "bbox": [x0, y0, x1 - x0, y1 - y0],
                     "area": (x1 - x0) * (y1 - y0)})  # fmt: skip
    cats = [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": files, "annotations": anns,
                                "categories": cats}))  # fmt: skip
    return path


def test_coco_fixture_end_to_end(job_dir, tmp_path):
    path = _write_coco(tmp_path)
    data = probe_pipeline.coco_probe_data(str(path), str(tmp_path), ["cat", "dog"], 32)
    assert data["image"].shape == (2, 32, 32, 3)
    want = np.zeros((2, 2, 32, 32), np.uint8)
    want[0, 0, 10:20, 4:12] = 1  # rows y0:y1, cols x0:x1
    want[1, 0, 0:8, 16:28] = 1
    want[1, 1, 20:30, 2:10] = 1
    np.testing.assert_array_equal(data["masks"], want)
    img = np.asarray(Image.open(tmp_path / "img1.png"))
    np.testing.assert_array_equal(data["image"][1], img)

    config = probes_config.get_config("tiny")
    config.backbone = str(job_dir / "backbones" / "small_cnn")
    config.concepts = ("cat", "dog")
    config.layers = ("conv3",)
    config.data.source = "coco"
    config.data.coco.annotations = str(path)
    config.data.coco.images = str(tmp_path)
    config.net2vec.epochs = 1
    config.tcav.targets = ("cat:airport", "dog:has_tree")
    work = tmp_path / "work"
    spec = cli.to_spec(probe_study.ProbeStudy, config)
    net = load_trained(spec.backbone)
    meta = run.fit(spec, str(work), net, progress=False)
    assert meta["num_train"] == 1 and meta["num_test"] == 1
    assert meta["targets"]["dog"] == ["has_tree", len(synthaerial.SCENES) + 5]
    out = evaluation.evaluate(spec, str(work), net, progress=False)
    iou = out["results"]["net2vec"]["conv3"]
    assert all(0 <= iou[c]["set_iou_mean"] <= 1 for c in ("cat", "dog"))
    assert out["results"]["tcav"] == {}  # one training image: no CAV sets
    assert "no concept had enough images" in out["markdown"]


def test_voc_fixture(tmp_path):
    for sub in ("SegmentationClass", "JPEGImages", "ImageSets/Segmentation"):
        (tmp_path / sub).mkdir(parents=True)
    index = np.zeros((24, 24), np.uint8)
    index[2:8, 3:9] = voc.VOC_CLASSES.index("cat")
    index[8, 3:9] = voc.VOID
    voc.write_class_mask(str(tmp_path / "SegmentationClass" / "a.png"), index)
    voc.write_class_mask(str(tmp_path / "SegmentationClass" / "b.png"), index * 0)
    for name in ("a", "b"):
        Image.new("RGB", (24, 24), (10, 200, 30)).save(
            tmp_path / "JPEGImages" / f"{name}.jpg"
        )
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    data = probe_pipeline.voc_probe_data(str(tmp_path), ["cat", "dog"], 12)
    np.testing.assert_array_equal(data["file_name"], ["a"])  # b has no concept
    # Nearest 2x downsampling: PIL samples source pixel floor((i + 0.5) * 2).
    src = np.zeros((24, 24), np.uint8)
    src[2:8, 3:9] = 1
    np.testing.assert_array_equal(data["masks"][0, 0], src[1::2, 1::2])
    assert not data["masks"][0, 1].any()


def test_config_variants_and_targets():
    for variant in probes_config.VARIANTS:
        c = probes_config.get_config(variant)
        assert set(c.concepts) == set(synthaerial.CONCEPTS)
        outputs = synthaerial.SCENES
        targets = probe_study.tcav_targets(
            cli.to_spec(probe_study.ProbeStudy, c), outputs
        )
        assert set(targets) == set(synthaerial.CONCEPTS)
        assert targets["airplane"] == ("airport", synthaerial.SCENES.index("airport"))
    c = probes_config.get_config("tiny")
    c.tcav.targets = ("car:nowhere",)
    with pytest.raises(ValueError, match="nowhere"):
        probe_study.tcav_targets(
            cli.to_spec(probe_study.ProbeStudy, c), synthaerial.SCENES
        )
    with pytest.raises(KeyError):
        probes_config.get_config("huge")
    assert isinstance(c.tcav, ml_collections.ConfigDict)
