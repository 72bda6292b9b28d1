"""Fits Net2Vec probes and TCAV CAVs to the layers of a trained backbone, and
evaluates them.

    python -m train.probes --config configs/probes.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Builds a training and a held-out split with per-concept masks (SynthAerial
scenes of unseen seeds, or COCO / VOC annotations), caches the layers'
activations (`DIR/features/{train,test}`), fits K concepts x L layers x R runs
of Net2Vec probes in bulk and, per layer, K x R concept-vs-random CAVs plus
R - 1 random-vs-random CAVs on whole images, then evaluates them on the
held-out split (`jaxcxai.concepts.probes.run` and `.evaluation`). Writes
`DIR/data.npz`, `net2vec.npz`, `tcav.npz`, `probes.json`,
`concepts_report.md`, `concepts_results.json` and figures; a finished fit is
not repeated. `python -m eval.concepts` re-evaluates a finished DIR.
"""

from __future__ import annotations

import json

from configs import cli
from jaxcxai.concepts.probes import evaluation, run
from jaxcxai.concepts.probes.study import ProbeStudy
from jaxcxai.training.backbone import load_trained


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Fits and evaluates the probes of `config` (a configs/probes.py config).

    Returns:
      {"meta" (the fit summary), "markdown", "figures", "results"}.
    """
    study = cli.to_spec(ProbeStudy, config)
    net = load_trained(study.backbone)
    meta = run.fit(study, workdir, net, progress)
    return dict(evaluation.evaluate(study, workdir, net, progress), meta=meta)


CONFIG = "configs/probes.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m train.probes`; `--help` lists variants and fields."""

    def run(args):
        out = train_and_evaluate(args.config, args.workdir)
        print(json.dumps(out["meta"]["seconds"]))
        return out

    return cli.main(run, argv, prog="train.probes", config=CONFIG, doc=__doc__)


if __name__ == "__main__":
    main()
