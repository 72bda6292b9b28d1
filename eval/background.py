"""Measures the background bias of concept embeddings of a trained backbone
(Schwalbe et al. 2025, arXiv 2504.08602).

    python -m eval.background --config configs/background.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Cuts SynthAerial objects (boats lie on water with probability 0.9) out of
their scenes, fits GloCEs of multi-view LoCEs and multi-view Net2Vec vectors
on vanilla, full and Voronoi background-randomised views
(`jaxcxai.concepts.background.run`), and measures their IoU on held-out
objects pasted on backgrounds of each scene group and in their own scenes,
the boat-on-road drop per training randomisation and the embedding shift.
Writes `DIR/background_arrays.npz`, `background_results.json`,
`background_report.md` and the figures `background_iou.png` and
`sample_views.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.background import run, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/background.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/background.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.background`).
    """
    spec = check(config)
    return run.background(spec, workdir, load_trained(spec.backbone), progress)


def check(config) -> study.BackgroundStudy:
    """The config as a `BackgroundStudy`; a setting the study would reject
    (unknown concept, method, randomisation or group) is a `ConfigError`
    before anything is written."""
    spec = cli.checked_spec(study.BackgroundStudy, config, study.check_study)
    return spec


def main(argv=None) -> dict:
    """`python -m eval.background`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.background", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
