"""Evaluates the probes fitted by `train.probes`: Net2Vec IoUs, TCAV significance.

    python -m eval.concepts --config configs/probes.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Reads DIR (`probes.json`, `net2vec.npz`, `tcav.npz`, `data.npz`, the held-out
feature cache) and writes `DIR/concepts_report.md`, `DIR/concepts_results.json`
and figures: per-concept set IoU across layers, TCAV scores with significance
marks, and predicted concept masks over held-out images
(`jaxcxai.concepts.probes.evaluation`).
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.probes import evaluation
from jaxcxai.concepts.probes.study import ProbeStudy
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/probes.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m eval.concepts`: DIR must hold a `train.probes` run of the
    same config."""

    def run(args):
        study = cli.to_spec(ProbeStudy, args.config)
        out = evaluation.evaluate(study, args.workdir, load_trained(study.backbone))
        print(out["markdown"])
        return out

    return cli.main(
        run, argv, prog="eval.concepts", config=CONFIG, doc=__doc__,
        existing_workdir="python -m train.probes",
    )  # fmt: skip


if __name__ == "__main__":
    main()
