"""Discovers concepts in a trained backbone's layers and scores them against
SynthAerial's planted concepts.

    python -m eval.discover --config configs/discover.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Generates SynthAerial scenes of an unseen seed with their object and
background masks, extracts the layers' spatial activations and fits, per
layer, `num_seeds` NMF (ICE) and TopK SAE dictionaries of the activation
rows (`jaxcxai.concepts.discovery.run`). Scores each dictionary by
reconstruction R², seed stability (Hungarian-matched cosine), localization
IoU of every component's presence map against every planted concept, the
cosine with the concepts' mean-difference CAVs and the backbone's scene
agreement on the reconstructed layer (`.evaluation`). Writes `DIR/data.npz`,
`dictionaries.npz`, `discover_results.json`, `discover_report.md`, the
reference-crop grids `references_<layer>.png` and the IoU heatmaps
`iou_<method>.png`.
"""

from __future__ import annotations

from configs import cli
from jaxcxai.concepts.discovery import run, study
from jaxcxai.training.backbone import load_trained

CONFIG = "configs/discover.py"  # default config file (`--help` lists it)


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Runs the study of `config` (a configs/discover.py config) in `workdir`.

    Returns:
      {"markdown", "figures", "results"} (`run.discover`).
    """
    spec = check(config)
    return run.discover(spec, workdir, load_trained(spec.backbone), progress)


def check(config) -> study.DiscoveryStudy:
    """The config as a `DiscoveryStudy`; a setting the fits would reject
    (unknown method or concept, a reference layer not studied) is a
    `ConfigError` before anything is written."""
    spec = cli.checked_spec(study.DiscoveryStudy, config, study.check_study)
    return spec


def main(argv=None) -> dict:
    """`python -m eval.discover`; `--help` lists variants and fields."""

    def body(args):
        out = train_and_evaluate(args.config, args.workdir)
        return cli.print_study(out, args.workdir, study.REPORT)

    return cli.main(body, argv, prog="eval.discover", config=CONFIG, doc=__doc__,
                    check=check)  # fmt: skip


if __name__ == "__main__":
    main()
