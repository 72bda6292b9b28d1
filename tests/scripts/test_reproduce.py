"""The main job end to end on the tiny variant: report, results, figures, one
workdir per variant, announced skips, refusal of a changed config."""

import json
import os
import subprocess

import pytest

from configs import reproduce
from eval import reproduce as job
from tests.paths import CONFIGS, ROOT

CONFIG = os.path.join(CONFIGS, "reproduce.py")
PNG = b"\x89PNG\r\n\x1a\n"

# Every figure the tiny run must write, per stage.
FIGURES = {
    "dataset": {"samples.png"},
    "backbones": {"loss.png"},
    "probes": {"net2vec_iou.png", "tcav_scores.png", "concept_masks.png"},
    "loce": {
        "embedding.png",
        "embedding_agnostic.png",
        "dendrogram.png",
        "separation.png",
        "overlap.png",
        "retrieval.png",
    },  # fmt: skip
    "hashing": {"map_vs_noise.png", "pr_curves.png"},
    "discovery": {"iou_nmf.png", "iou_sae.png", "references_conv3.png"},
    "background": {"background_iou.png", "sample_views.png"},
    "hierarchy": {"dendrograms.png", "coverage_accuracy.png", "tradeoff.png"},
    "adversarial": {
        "adversarial_asr.png",
        "adversarial_examples.png",
        "adversarial_variance.png",
        "adversarial_ablation.png",
        "adversarial_specificity.png",
    },
    "comparison": {
        "similarity_small_cnn_vs_small_cnn.png",
        "similarity_small_cnn_vs_mobilenet_v2.png",
        "similarity_mobilenet_v2_vs_mobilenet_v2.png",
        "best_matches.png",
        "probe_iou.png",
    },
    "stability": {
        "retrieval_vs_layer.png",
        "consistency_vs_samples.png",
        "attribution_sign_flips.png",
    },
    "gating": {
        "xec_heatmap.png",
        "e3_strata.png",
        "e4_precision_recall.png",
        "e5_cost.png",
        "faithfulness.png",
        "focus_signal_mass.png",
        "reference_extras.png",
        "uc1_routing.png",
        "image_ssim.png",
    },  # fmt: skip
    "explain": {
        "attribution_grid.png",
        "metric_bars.png",
        "randomization.png",
        "faithfulness_curves.png",
        "relevance_by_concept.png",
        "tabular.png",
    },  # fmt: skip
}


def _snapshot(workdir):
    out = {}
    for dirpath, _, files in os.walk(workdir):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = (os.path.getmtime(p), os.path.getsize(p))
    return out


def test_tiny_main_job_writes_report(tmp_path, capsys):
    work = str(tmp_path / "reproduce-tiny")
    job.main(["--config", f"{CONFIG}:tiny", "--workdir", work])
    for name in ("report.md", "results.json", "config.json"):
        assert os.path.getsize(os.path.join(work, name)) > 0
    saved = json.load(open(os.path.join(work, "results.json")))
    config = reproduce.get_config("tiny")
    assert list(saved) == list(config.stages)
    for stage, result in saved.items():
        assert FIGURES.get(stage, set()) <= set(result.get("figures", [])), stage
        for fig in result.get("figures", []):
            with open(os.path.join(work, stage, fig), "rb") as f:
                head = f.read(8)
            assert head == PNG and os.path.getsize(f.name) > 1000, (stage, fig)
    r = saved["backbones"]["results"]["small_cnn"]
    assert r["steps"] == config.backbones.small_cnn.train.steps
    assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["label_macro_f1"] <= 1.0
    report = open(os.path.join(work, "report.md")).read()
    assert "**Variant**: `tiny`" in report and "| small_cnn |" in report
    assert "## Terms" in report and "**mAP@K**" in report
    assert "None" not in report
    out = capsys.readouterr().out
    n = len(config.stages)
    assert f"[3/{n} backbones] running; expected" in out

    # A second run announces the finished stages and leaves them as they were.
    before = _snapshot(os.path.join(work, "backbones"))
    again = job.run(config, work)
    assert again["backbones"]["results"] == saved["backbones"]["results"]
    assert _snapshot(os.path.join(work, "backbones")) == before
    assert "already done in an earlier run" in capsys.readouterr().out

    # Another config into the same workdir is refused before anything is
    # written, naming the difference.
    before = _snapshot(work)
    with pytest.raises(SystemExit) as e:
        job.main(["--config", f"{CONFIG}:tiny", "--workdir", work,
                  "--config.hashing.noise_rates=(0.0, 0.3)"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "hashing.noise_rates" in err and "Traceback" not in err
    assert _snapshot(work) == before


def test_variants_get_their_own_workdirs(tmp_path, capsys):
    cheap = "--config.stages=('environment', 'dataset')"
    a, b = str(tmp_path / "reproduce-tiny"), str(tmp_path / "reproduce-default")
    job.main(["--config", f"{CONFIG}:tiny", "--workdir", a, cheap])
    job.main(["--config", CONFIG, "--workdir", b, cheap])
    out = capsys.readouterr().out
    assert "already done" not in out  # the default run reused nothing
    for work, variant in ((a, "tiny"), (b, "default")):
        report = open(os.path.join(work, "report.md")).read()
        assert f"**Variant**: `{variant}`" in report
    size = {w: json.load(open(os.path.join(w, "config.json")))["dataset"]["image_size"]
            for w in (a, b)}  # fmt: skip
    assert size[a] == reproduce.get_config("tiny").dataset.image_size
    assert size[b] == reproduce.get_config("default").dataset.image_size != size[a]
    # The default variant into the tiny workdir is refused.
    with pytest.raises(SystemExit):
        job.main(["--config", CONFIG, "--workdir", a, cheap])
    assert "variant: tiny -> default" in capsys.readouterr().err
    # `make demo` picks the workdir from the variant.
    dry = subprocess.run(["make", "-n", "demo", "VARIANT=tiny"], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "--workdir workdirs/reproduce-tiny" in dry.stdout
