"""Explains a trained SynthAerial backbone and a tabular model with every
attribution method, and scores the explanations.

    python -m eval.explain --config configs/explain.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Images: held-out SynthAerial scenes, each paired with an object concept it
contains; every image method (saliency, gradient x input, Integrated
Gradients, SmoothGrad, Grad-CAM, Grad-CAM++, occlusion, RISE, LIME)
explains the presence logit `has_<concept>` and is scored against the
concept's mask (relevance mass, pointing game), by deletion and insertion
AUC, by cascading parameter randomisation and, for the sampled methods, by
the rank agreement of two keys. Tabular: scikit-learn's wine set with an MLP
(gradients, Integrated Gradients, SmoothIG, KernelSHAP, LIME) and a random
forest (TreeSHAP, LIME), scored by the log-odds removal shift
(`jaxcxai.attribution.run`). Trains nothing but the two small tabular
models. Writes `DIR/results.json`, `DIR/explain_report.md`, the arrays
(`attributions.npz`, `tabular.npz`) and PNG figures.
"""

from __future__ import annotations

import os

from configs import cli
from jaxcxai.attribution import run, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/explain.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m eval.explain`; `--help` lists variants and fields."""

    def explain(args):
        spec = cli.to_spec(study.ExplainStudy, args.config)
        run.check(spec)
        out = run.explain(spec, args.workdir, load_trained(spec.backbone))
        print(out["markdown"])
        print(f"report: {os.path.join(args.workdir, study.REPORT)}")
        return out

    return cli.main(explain, argv, prog="eval.explain", config=CONFIG, doc=__doc__)


if __name__ == "__main__":
    main()
