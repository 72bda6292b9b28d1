"""Runs the uncertainty-gating experiments (arXiv:2603.29915) and writes the
report with the paper's numbers beside ours.

    python -m eval.gating --config configs/gating.py[:tiny] --workdir DIR \\
        [--config.data.data_dir=/path/to/uci/files]

Per dataset (the embedded scikit-learn substitutes of the paper's four
roles, or the paper's UCI files from `data.data_dir`): fits LR (bootstrap),
RF and MLP (MC dropout) and runs E1 (Table 2), E2 (XEC per model x
explainer x perturbation, Figure 2), E3 (U_epi strata, Figure 3), E4 and E5
(Tables 3-4), the faithfulness groups (Figure 4) and UC1 routing (a
reconstruction); then the image experiment (CNN with MC dropout, IG and
SmoothGrad SSIM vs noise). Writes `DIR/gating_report.md`, `results.json`,
`arrays.npz` and PNG figures (`jaxcxai.uncertainty.run`).
"""

from __future__ import annotations

import os

from configs import cli
from jaxcxai.uncertainty import run, study

CONFIG = "configs/gating.py"  # default config file (`--help` lists it)


def check(config) -> study.GatingStudy:
    """The config as a `GatingStudy`; a setting the study would reject is a
    `ConfigError` before anything is written."""
    spec = cli.checked_spec(study.GatingStudy, config, study.check_study)
    return spec


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/gating.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.run_study`).
    """
    return run.run_study(check(config), workdir, progress)


def main(argv=None) -> dict:
    """`python -m eval.gating`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        print(out["markdown"])
        print(f"report: {os.path.join(args.workdir, study.REPORT)}")
        return out

    return cli.main(body, argv, prog="eval.gating", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
