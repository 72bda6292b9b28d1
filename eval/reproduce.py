"""The main job: runs every implemented stage on SynthAerial and reports.

    python -m eval.reproduce --config configs/reproduce.py[:tiny] --workdir DIR

Writes `DIR/report.md`, `DIR/results.json` and PNG figures. Each stage works
in `DIR/<stage>/` and records `stage.json` when done, so a re-run skips
finished stages (delete a stage folder to redo it) and an interrupted
training stage resumes from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import time

from configs import cli
from eval.stages import backbones, dataset, environment, hashing, loce, probes
from jaxcxai import hostmem
from jaxcxai.metric_writers import write_json_atomic

# Stage name -> function(config_section, stage_dir) -> stages.StageResult.
STAGES = {
    "environment": environment.environment,
    "dataset": dataset.dataset,
    "backbones": backbones.backbones,
    "probes": probes.probes,
    "loce": loce.loce,
    "hashing": hashing.hashing,
}


def run(config, workdir: str) -> dict:
    """Runs the configured stages in order; returns all results."""
    os.makedirs(workdir, exist_ok=True)
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; valid: {list(STAGES)}")
    results = {}
    for name in config.stages:
        stage_dir = os.path.join(workdir, name)
        done_path = os.path.join(stage_dir, "stage.json")
        if os.path.exists(done_path):
            logging.info("[%s] already done, skipping (%s)", name, done_path)
            with open(done_path) as f:
                results[name] = json.load(f)
            continue
        os.makedirs(stage_dir, exist_ok=True)
        logging.info("[%s] running", name)
        t0 = time.perf_counter()
        section = config.get(name, None)
        result = STAGES[name](section, stage_dir)
        result["seconds"] = time.perf_counter() - t0
        write_json_atomic(done_path, result)
        results[name] = result
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    _write_report(results, workdir)
    return results


def _write_report(results: dict, workdir: str) -> None:
    lines = ["# jaxcxai main job report", ""]
    for name, result in results.items():
        lines += [f"## {name}", "", result.get("markdown", "").rstrip(), ""]
        for fig in result.get("figures", []):
            lines += [f"![{name}]({os.path.join(name, fig)})", ""]
        lines += [f"_stage time: {result.get('seconds', 0):.1f} s_", ""]
    path = os.path.join(workdir, "report.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hostmem.keep_freed_memory()
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    cli.save_config(args.config, args.workdir)
    run(args.config, args.workdir)
    print(f"report: {os.path.join(args.workdir, 'report.md')}")


if __name__ == "__main__":
    main()
