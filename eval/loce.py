"""Analyses the per-instance SynthAerial LoCEs fitted by `train.loce`.

    python -m eval.loce --config configs/loce.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Reads DIR (`store/`, `instances.npz`) and writes `DIR/loce_report.md`,
`DIR/loce_results.json` and PNG figures (`jaxcxai.concepts.loce.evaluation`):
the 2-D embedding with per-concept GMMs, a dendrogram, separation and overlap
heatmaps, retrieval curves, outlier tiles and centroid-projection overlays.
"""

from __future__ import annotations

import os

from configs import cli
from jaxcxai.concepts.loce import evaluation, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/loce.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m eval.loce`: DIR must hold a `train.loce` run of the same
    config."""

    def run(args):
        spec = cli.to_spec(study.LoceStudy, args.config)
        out = evaluation.analyze(spec, args.workdir, load_trained(spec.backbone))
        print(out["markdown"])
        print(f"report: {os.path.join(args.workdir, evaluation.REPORT)}")
        return out

    return cli.main(
        run, argv, prog="eval.loce", config=CONFIG, doc=__doc__,
        existing_workdir="python -m train.loce",
    )  # fmt: skip


if __name__ == "__main__":
    main()
