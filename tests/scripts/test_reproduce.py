"""The main job end to end on the tiny config: report, results, figures."""

import json
import os

from configs import reproduce
from eval import reproduce as job
from jaxcxai.data import synthaerial


def test_tiny_main_job_writes_report(tmp_path):
    config = reproduce.get_config("tiny")
    results = job.run(config, str(tmp_path))
    for name in ("report.md", "results.json"):
        assert os.path.getsize(tmp_path / name) > 0
    saved = json.load(open(tmp_path / "results.json"))
    assert set(saved) == set(config.stages)
    for stage, result in saved.items():
        for fig in result.get("figures", []):
            assert os.path.getsize(tmp_path / stage / fig) > 1000, (stage, fig)
    backbones = results["backbones"]["results"]
    for name, r in backbones.items():
        assert r["steps"] == config.backbones[name].train.steps
        # Far too few steps to learn much, but the metrics must be sane.
        assert 0.0 <= r["accuracy"] <= 1.0
        assert 0.0 <= r["label_macro_f1"] <= 1.0
    assert len(synthaerial.SCENES) >= 10
    report = open(tmp_path / "report.md").read()
    assert "| small_cnn |" in report and "| resnet18 |" in report
    # A second run skips the finished stages and leaves the results as they were.
    again = job.run(config, str(tmp_path))
    assert again["backbones"]["results"] == saved["backbones"]["results"]
