"""The main job: runs every implemented stage on SynthAerial and reports.

    python -m eval.reproduce --config configs/reproduce.py[:VARIANT] \\
        --workdir workdirs/reproduce-VARIANT

Writes `DIR/report.md`, `DIR/results.json` and PNG figures. Each stage works
in `DIR/<stage>/` and records `stage.json` when done, so a re-run skips
finished stages (it says so; delete a stage folder to redo it) and an
interrupted training stage resumes from its checkpoint. A workdir belongs to
one resolved config: running another variant or override into it is refused
before anything is written.
"""

from __future__ import annotations

import json
import os
import time

from configs import cli, validate
from eval.stages import (
    adversarial,
    backbones,
    background,
    comparison,
    dataset,
    discovery,
    environment,
    explain,
    gating,
    hashing,
    hierarchy,
    loce,
    probes,
    stability,
)
from eval.stages.report import write_report
from jaxcxai.metric_writers import write_json_atomic

# Stage name -> function(config_section, stage_dir) -> dict with `markdown`,
# `figures` and results, optionally `summary` (what ran at what size),
# `reconstructions` [(part, reason)] and `caveats` [text].
STAGES = {
    "environment": environment.environment,
    "dataset": dataset.dataset,
    "backbones": backbones.backbones,
    "probes": probes.probes,
    "loce": loce.loce,
    "hashing": hashing.hashing,
    "discovery": discovery.discovery,
    "explain": explain.explain,
    "gating": gating.gating,
    "stability": stability.stability,
    "background": background.background,
    "comparison": comparison.comparison,
    "hierarchy": hierarchy.hierarchy,
    "adversarial": adversarial.adversarial,
}


def _say(text: str) -> None:
    print(text, flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def known_stages(config) -> None:
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise cli.ConfigError(f"unknown stages {unknown}; valid: {list(STAGES)}")


def run(config, workdir: str) -> dict:
    """Runs the configured stages in order; returns all results."""
    known_stages(config)
    validate.check_workdir(config, workdir)
    cli.save_config(config, workdir)
    expected = dict(config.get("expected_seconds", {}))
    total_expected = sum(expected.get(s, 0) for s in config.stages)
    _say(
        f"main job, variant {config.get('variant', '?')!r}: {len(config.stages)} "
        f"stages, expected {_minutes(total_expected)} on a 2-core CPU -> {workdir}"
    )
    results, t_job, remaining = {}, time.perf_counter(), total_expected
    for i, name in enumerate(config.stages, 1):
        stage_dir = os.path.join(workdir, name)
        done_path = os.path.join(stage_dir, "stage.json")
        remaining -= expected.get(name, 0)
        if os.path.exists(done_path):
            with open(done_path) as f:
                results[name] = json.load(f)
            _say(f"[{i}/{len(config.stages)} {name}] already done in an earlier "
                 f"run ({done_path}); skipping (delete {stage_dir} to redo it)")  # fmt: skip
            continue
        os.makedirs(stage_dir, exist_ok=True)
        eta = time.strftime(
            "%H:%M", time.localtime(time.time() + expected.get(name, 0) + remaining)
        )
        _say(f"[{i}/{len(config.stages)} {name}] running; expected "
             f"{_minutes(expected.get(name, 0))}, job done at about {eta}")  # fmt: skip
        t0 = time.perf_counter()
        result = STAGES[name](config.get(name, None), stage_dir)
        result["seconds"] = time.perf_counter() - t0
        write_json_atomic(done_path, result)
        results[name] = result
        _say(f"[{i}/{len(config.stages)} {name}] done in {_minutes(result['seconds'])}")
    total = time.perf_counter() - t_job
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    write_report(config, results, workdir, total)
    return results


def main(argv=None):
    def job(args):
        run(args.config, args.workdir)
        _say(f"report: {os.path.join(args.workdir, 'report.md')}")

    return cli.main(job, argv, prog="eval.reproduce", config="configs/reproduce.py",
                    doc=__doc__, check=known_stages)  # fmt: skip


if __name__ == "__main__":
    main()
