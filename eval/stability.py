"""Measures how stable concept representations of a trained backbone are
(Mikriukov et al. 2023, arXiv 2304.14864).

    python -m eval.stability --config configs/stability.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Generates SynthAerial scenes of an unseen seed labelled with object
concepts, their planted sub-concepts and scene classes, extracts the
layers' spatial activations and measures, per layer
(`jaxcxai.concepts.stability.run`): the retrieval stability S = separation x
consistency of R CAVs per view (1D/2D/3D) and sample count, the consistency
of NMF (ICE) concepts across seeds, and the stability of concept attribution
over repeated noise with and without SmoothGrad, plus single-vs-batched
gradients. Checks the planted expectations (consistency rises with samples,
1D beats 3D, sub-concepts are less stable than their parent). Writes
`DIR/data.npz`, `cavs.npz`, `stability_results.json`,
`stability_report.md` and the figures `retrieval_vs_layer.png`,
`consistency_vs_samples.png` and `attribution_sign_flips.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.stability import run, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/stability.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/stability.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.stability`).
    """
    spec = check(config)
    return run.stability(spec, workdir, load_trained(spec.backbone), progress)


def check(config) -> study.StabilityStudy:
    """The config as a `StabilityStudy`; a setting the study would reject
    (unknown concept or view, a sub-concept without its parent, too few
    runs) is a `ConfigError` before anything is written."""
    spec = cli.checked_spec(study.StabilityStudy, config, study.check_study)
    return spec


def main(argv=None) -> dict:
    """`python -m eval.stability`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.stability", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
