"""Fits one LoCE per SynthAerial object instance and layer of a trained
backbone, and analyses their distributions.

    python -m train.loce --config configs/loce.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Generates `config.data.num_images` scenes (a seed the backbone never saw),
keeps the object instances with at least `min_area` pixels (a seeded subset of
at most `max_per_concept` per concept), extracts the configured layers and
fits the LoCEs chunk by chunk into `DIR/store/` (a re-run resumes after the
last finished chunk; `jaxcxai.concepts.loce.study`), then analyses them
(`jaxcxai.concepts.loce.evaluation`): `DIR/loce_report.md`,
`loce_results.json` and figures. `python -m eval.loce` re-analyses a DIR.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.loce import evaluation, study
from jaxcxai.training.backbone import load_trained


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Fits and analyses the LoCEs of `config` (a configs/loce.py config).

    Returns:
      {"markdown", "figures", "results", "num_loces"}.
    """
    spec = cli.to_spec(study.LoceStudy, config)
    net = load_trained(spec.backbone)
    fitted = study.fit(spec, workdir, net, progress)
    out = evaluation.analyze(spec, workdir, net, progress)
    return dict(out, num_loces=int(fitted.meta["n"]))


CONFIG = "configs/loce.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m train.loce`; `--help` lists variants and fields."""

    def run(args):
        out = train_and_evaluate(args.config, args.workdir)
        print(f"{out['num_loces']} LoCEs; report: {args.workdir}/loce_report.md")
        return out

    return cli.main(run, argv, prog="train.loce", config=CONFIG, doc=__doc__)


if __name__ == "__main__":
    main()
