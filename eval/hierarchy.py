"""Explains, verifies and aligns semantic hierarchies in embedding spaces
(Schwalbe et al. 2026, arXiv:2603.26798).

    python -m eval.hierarchy --config configs/hierarchy.py[:tiny] --workdir DIR \\
        [--config.clip.checkpoint=/path/open_clip_model.safetensors]

Per embedding source and modality (`jaxcxai.hierarchy.run`): the
agglomerative tree of the class centroids, its nodes named from the
ontology's names; triplet agreement, edge consistency, cophenetic
correlation, zero-shot accuracy and UAES against the ontology; the lambda
sweep of the ontology-guided alignment. Sources: the two-tower model trained
here on SynthAerial (scene taxonomy), MiniLM and the packaged ImageNet
classifiers on the ImageNet classes (WordNet), and an optional OpenCLIP
checkpoint. Writes `DIR/hierarchy_arrays.npz`, `hierarchy_results.json`,
`hierarchy_report.md` and the figures `dendrograms.png`,
`dendrograms_large.png` (ImageNet), `coverage_accuracy.png` and
`tradeoff.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.hierarchy import run, study

CONFIG = "configs/hierarchy.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/hierarchy.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.hierarchy`).
    """
    return run.hierarchy(check(config), workdir, progress)


def check(config) -> study.HierarchyStudy:
    """The config as a `HierarchyStudy`; a setting the study would reject
    (unknown source, classifier, linkage; a missing checkpoint file) is a
    `ConfigError` before anything is written."""
    return cli.checked_spec(study.HierarchyStudy, config, study.check_study)


def main(argv=None) -> dict:
    """`python -m eval.hierarchy`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.hierarchy", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
