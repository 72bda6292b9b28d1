"""Dissects targeted adversarial attacks in concept space (Mikriukov et al.
2024, arXiv 2403.16782; a reconstruction).

    python -m eval.adversarial --config configs/adversarial.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Attacks SynthAerial scenes on the trained backbone, the bundled photos on the
packaged ImageNet MobileNetV2 (and EfficientNet-Lite0 in `full`) and digits
on a small CNN trained inside the study with BIM, PGD, MI-FGSM and C&W-l2
(`jaxcxai.adversarial.run`), then dissects the latent perturbations of the
successful examples: concept composition (F1), global components and their
ablation (F2), target specificity (F3), TCAV / Net2Vec of SynthAerial
concepts and the planted boat/harbor check. Writes
`DIR/adversarial_arrays.npz`, `adversarial_results.json`,
`adversarial_report.md` and the figures `adversarial_asr.png`,
`adversarial_examples.png`, `adversarial_variance.png`,
`adversarial_ablation.png` and `adversarial_specificity.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.adversarial import run, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/adversarial.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/adversarial.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.adversarial`).
    """
    spec = check(config)
    net = load_trained(spec.backbone) if "synthaerial" in spec.models else None
    return run.adversarial(spec, workdir, net, progress)


def check(config) -> study.AdversarialStudy:
    """The config as an `AdversarialStudy`; a setting the study would reject
    (unknown model, attack, scene, photo or class) is a `ConfigError` before
    anything is written."""
    return cli.checked_spec(study.AdversarialStudy, config, study.check_study)


def main(argv=None) -> dict:
    """`python -m eval.adversarial`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.adversarial", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
