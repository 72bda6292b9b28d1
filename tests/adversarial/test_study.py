"""The adversarial-dissection study end to end: `eval.adversarial` on the tiny
config against a tiny SynthAerial backbone, and the main-job stage.

The backbone is a SmallCNN with random weights (`zoo.host_init`) saved as a
`train.classifier` workdir, so the script loads it as any trained one and no
test time goes to training: attacks succeed easily on it, which is what the
dissection needs. Numbers the study reports are recomputed independently
from the saved arrays: the PGD success rate from the backbone's logits at
the saved adversarial images, the GAP latent perturbations and the
explained-variance ratios (float64 NumPy SVD), the ablation end points, the
specificity gap from its matrix, the planted-check cosines from the saved
CAVs; patching the whole perturbation out restores the clean logits. Bad
settings stop with an error naming the field before anything is written.
"""

import json
import os
import re

import jax
import numpy as np
import pytest

from configs import adversarial as adversarial_config
from eval import adversarial as eval_adversarial
from eval.stages import adversarial as stage_adversarial
from jaxcxai import checkpoint
from jaxcxai.adversarial import latent, report, study
from jaxcxai.data import synthaerial
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.zoo import host_init
from jaxcxai.training import backbone as backbone_lib
from jaxcxai.training.state import TrainState
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "adversarial.py")
PNG = b"\x89PNG\r\n\x1a\n"
SIZE = 32
EPS = "32/255"  # the tiny config's budget


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    """A main-job-like workdir with backbones/small_cnn: random weights
    (`zoo.host_init`, the head centred over the channels)."""
    root = tmp_path_factory.mktemp("job")
    work = str(root / "backbones" / "small_cnn")
    outputs = backbone_lib.output_names(synthaerial.SCENES, synthaerial.CONCEPTS)
    meta = backbone_lib.BackboneMeta(
        model="small_cnn", outputs=outputs, num_classes=len(synthaerial.SCENES),
        image_size=SIZE, dataset="synthaerial", lr=1e-3, steps=1, weight_decay=0.0,
    )  # fmt: skip
    model = SmallCNN(num_classes=len(outputs))
    v = host_init(model, (1, SIZE, SIZE, 3), seed=3)
    # Post-ReLU features share a positive mean direction; without it in the
    # head every class is within reach of the attack.
    w = v["params"]["fc"]["kernel"]
    v["params"]["fc"]["kernel"] = w - w.mean(0, keepdims=True)
    tx = backbone_lib.classifier_tx(meta.lr, meta.steps, meta.weight_decay)
    state = TrainState(step=np.int32(1), params=v["params"], batch_stats=v["batch_stats"],
                       opt_state=tx.init(v["params"]), apply_fn=model.apply, tx=tx)  # fmt: skip
    ckpt = checkpoint.Checkpointer(os.path.join(work, "ckpt"), async_save=False)
    ckpt.save(state, force=True)
    ckpt.close()
    backbone_lib.save_meta(work, meta)
    return root


@pytest.fixture(scope="module")
def tiny_run(job_dir, tmp_path_factory):
    """The script on the tiny config; its workdir, stdout and the backbone."""
    work = tmp_path_factory.mktemp("adversarial")
    backbone = str(job_dir / "backbones" / "small_cnn")
    out = eval_adversarial.main(["--config", f"{CONFIG}:tiny", "--workdir", str(work),
                                 f"--config.backbone={backbone}"])  # fmt: skip
    return work, out, backbone_lib.load_trained(backbone)


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == PNG


def test_pgd_success_rate_is_recomputed_from_logits(tiny_run):
    work, _, net = tiny_run
    res = json.loads((work / study.RESULTS).read_text())
    arrays = study.load_npz(str(work / study.ARRAYS))
    images, labels = arrays["synthaerial.images"], arrays["synthaerial.labels"]
    targets = arrays["synthaerial.targets"]
    x_adv = arrays[f"synthaerial.pgd.{EPS}.x_adv"]  # (T, N, S, S, 3)
    assert x_adv.shape == (len(targets),) + images.shape
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - images[None]).max() <= 32 / 255 + 1e-6
    logits = np.asarray(jax.jit(lambda x: net.model.apply(
        net.variables, net.preprocess(x), train=False)[0])(x_adv.reshape((-1,) + images.shape[1:])))  # fmt: skip
    pred = logits[:, : len(synthaerial.SCENES)].argmax(-1).reshape(len(targets), -1)
    valid = labels[None] != targets[:, None]
    want = ((pred == targets[:, None]) & valid).sum() / valid.sum()
    row = [r for r in res["asr"] if r["attack"] == "pgd"]
    assert len(row) == 1 and row[0]["n"] == valid.sum()
    np.testing.assert_allclose(row[0]["asr"], want, atol=1e-6)
    assert 0 < want  # the random backbone is easy to fool: the checks below run
    np.testing.assert_array_equal(arrays[f"synthaerial.pgd.{EPS}.success"],
                                  pred == targets[:, None])  # fmt: skip


def _successful(arrays):
    order = arrays["synthaerial.targets"].tolist()
    j = np.asarray([order.index(t) for t in arrays["synthaerial.target"]])
    n = arrays["synthaerial.image"]  # source image of each dissected example
    return arrays["synthaerial.images"][n], arrays[f"synthaerial.pgd.{EPS}.x_adv"][j, n]


def test_latent_perturbation_components_and_patching(tiny_run):
    work, _, net = tiny_run
    res = json.loads((work / study.RESULTS).read_text())
    arrays = study.load_npz(str(work / study.ARRAYS))
    dis = res["per_model"]["synthaerial"]["dissection"]
    layer = res["per_model"]["synthaerial"]["layers"][0]
    x, x_adv = _successful(arrays)
    assert dis["num_examples"] == len(x) >= 2
    run = jax.jit(
        lambda b: net.model.apply(net.variables, net.preprocess(b), train=False)
    )
    (lc, ac), (la, aa) = run(x), run(x_adv)
    spatial = np.asarray(aa[layer], np.float64) - np.asarray(ac[layer], np.float64)
    d = arrays[f"synthaerial.{layer}.delta"]
    np.testing.assert_allclose(d, spatial.mean((1, 2)), atol=1e-5)
    # Uncentred PCA: explained ratios are the squared singular values' shares.
    s = np.linalg.svd(d.astype(np.float64), compute_uv=False)
    lr = dis["layers"][layer]
    k = len(lr["evr"])
    np.testing.assert_allclose(lr["evr"], (s**2 / (s**2).sum())[:k], atol=2e-4)
    # Ablation end points: m = 0 is the attack (all succeed), the add-only
    # curve at m = 0 the clean images.
    t = arrays["synthaerial.target"]
    nc = len(synthaerial.SCENES)
    assert (
        lr["ablation"]["success"][0]
        == np.mean(np.asarray(la)[:, :nc].argmax(-1) == t)
        == 1.0
    )
    assert lr["add_only"]["success"][0] == pytest.approx(
        np.mean(np.asarray(lc)[:, :nc].argmax(-1) == t)
    )
    # Removing the whole perturbation at the layer restores the clean logits.
    back = latent.patched_logits(net.model, net.variables, net.preprocess(x_adv), layer,
                                 (-spatial).astype(np.float32))  # fmt: skip
    np.testing.assert_allclose(back, lc, atol=1e-4)


def test_specificity_and_planted_check_numbers(tiny_run):
    work, _, _ = tiny_run
    res = json.loads((work / study.RESULTS).read_text())
    arrays = study.load_npz(str(work / study.ARRAYS))
    per = res["per_model"]["synthaerial"]
    layer = per["layers"][0]
    sp = per["dissection"]["layers"][layer]["specificity"]
    m = np.asarray(sp["matrix"])  # 2 sources x 2 targets: the test runs
    lab = np.asarray([u["target"] for u in sp["units"]])
    assert len(lab) == 4 and sorted(set(lab)) == ["airport", "harbor"]
    same, off = lab[:, None] == lab[None], ~np.eye(len(lab), dtype=bool)
    np.testing.assert_allclose(sp["gap"], m[same & off].mean() - m[~same].mean(),
                               atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-9)  # unit directions
    assert 0 < sp["p_value"] <= 1
    planted = per["probes"]["layers"][layer]["planted"]
    cavs = arrays[f"synthaerial.{layer}.cav"]
    i = per["probes"]["layers"][layer]["cav_concepts"].index("boat")
    d, t = arrays[f"synthaerial.{layer}.delta"], arrays["synthaerial.target"]
    names = dict(enumerate(synthaerial.SCENES))
    for tgt in np.unique(t):
        mu = d[t == tgt].astype(np.float64).mean(0)
        want = mu @ cavs[i] / np.linalg.norm(mu) / np.linalg.norm(cavs[i])
        np.testing.assert_allclose(planted["cosine"][names[int(tgt)]], want, atol=1e-5)
    others = [c for n, c in planted["cosine"].items() if n != "harbor"]
    assert planted["toward"] == (
        "harbor" in planted["cosine"] and bool(others)
        and planted["cosine"]["harbor"] > max(others)
    )  # fmt: skip


def test_report_and_figures(tiny_run):
    work, out, _ = tiny_run
    md = (work / study.REPORT).read_text()
    assert md == out["markdown"] + "\n"
    assert f"| synthaerial | pgd | {EPS} |" in md and "**Planted check**" in md
    assert "**synthaerial / conv3**: F1" in md
    assert not re.search(r"\bNone\b|\bnan\b", md)
    for part, _ in report.RECONSTRUCTIONS:
        assert f"- {part}:" in md
    assert out["figures"] and all(_is_png(work / f) for f in out["figures"])
    assert {"adversarial_asr.png", "adversarial_ablation.png",
            "adversarial_specificity.png"} <= set(out["figures"])  # fmt: skip


def test_stage_wraps_the_study(job_dir, tiny_run, monkeypatch):
    _, out, _ = tiny_run
    seen = {}

    def fake(spec, stage_dir, net, progress):
        seen["backbone"], seen["outputs"] = spec.backbone, net.outputs
        return out

    monkeypatch.setattr(stage_adversarial.run, "adversarial", fake)
    config = adversarial_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    stage_dir = job_dir / "adversarial"
    stage_dir.mkdir()
    got = stage_adversarial.adversarial(config, str(stage_dir))
    assert seen["backbone"] == str(job_dir / "backbones" / "small_cnn")
    assert "Reconstructions" not in got["markdown"]  # listed by the main report
    assert f"| synthaerial | pgd | {EPS} |" in got["markdown"]
    assert got["reconstructions"] == list(report.RECONSTRUCTIONS)
    assert any("permutations" in c for c in got["caveats"])
    assert "synthaerial: 8 source images x 2 targets" in got["summary"]
    json.dumps(got)  # the main job stores it as JSON


@pytest.mark.parametrize(
    "override, named",
    [("--config.models=('vgg16',)", "models"),
     ("--config.attack.names=('deepfool',)", "attack.names"),
     ("--config.scenes.targets=('forest',)", "scenes.sources and scenes.targets"),
     ("--config.probes.target=beach", "probes.target"),
     ("--config.dissect.method=svd", "dissect.method")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    with pytest.raises(SystemExit) as e:
        eval_adversarial.main(["--config", f"{CONFIG}:tiny", "--workdir",
                               str(tmp_path / "w"), override])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()
