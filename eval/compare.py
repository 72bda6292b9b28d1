"""Compares the layers of a trained backbone, packaged ImageNet networks and
itself by the concepts their probes find (Mikriukov et al., arXiv:2305.07663).

    python -m eval.compare --config configs/compare.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Per network, fits Net2Vec probes and CAVs of SynthAerial's object concepts
at evenly spaced layers on training scenes, then on shared held-out scenes
computes each layer's concept masks on a common grid and CAV projections
(`jaxcxai.concepts.comparison.run`). For every pair of networks, a network
with itself included, writes the layer x layer similarity (set IoU of the
masks, Pearson of the projections), linear CKA of the raw activations, each
layer's best match and its relative-depth distance, and the planted checks:
the self-comparison's diagonal and best matches near equal relative depth
against random assignment. Writes `DIR/data.npz`, `outputs.npz`,
`similarity.npz`, `compare_results.json`, `compare_report.md`, a heatmap
figure per pair `similarity_<A>_vs_<B>.png`, `best_matches.png` and
`probe_iou.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.comparison import run, study

CONFIG = "configs/compare.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/compare.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.compare`).
    """
    return run.compare(check(config), workdir, progress)


def check(config) -> study.CompareStudy:
    """The config as a `CompareStudy`; a setting the study would reject
    (unknown concept or network, a bad `layers` entry, an input size the
    ImageNet networks cannot take) is a `ConfigError` before anything is
    written."""
    spec = cli.checked_spec(study.CompareStudy, config, study.check_study)
    return spec


def main(argv=None) -> dict:
    """`python -m eval.compare`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.compare", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
