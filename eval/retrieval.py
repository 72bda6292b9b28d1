"""Hamming-ranking retrieval metrics of saved hash codes (DUCH/CHNR protocol).

    python -m eval.retrieval --codes codes.npz --out workdirs/eval [--map-k 10 20]

`codes.npz` holds either the cross-modal layout `query_image`, `query_text`,
`db_image`, `db_text`, `query_labels`, `db_labels` (directions I->T, T->I,
I->I, T->T and their average), or a single `query_codes`, `db_codes`,
`query_labels`, `db_labels`. Codes are +-1 (`--binarize` maps x >= 0 to +1
first); labels are multi-hot. Writes to OUT:
  retrieval_metrics.json  every metric per direction (PR curves as lists),
  retrieval_metrics.md    a markdown table of the scalar metrics,
  pr_curve.png            precision-recall and precision-vs-radius plots.
"map@K" is the reference (DUCH) AP, "map_trunc@K" the standard truncated
AP@K (see `jaxcxai.metrics.retrieval`). `--ties expected` (default) reports
each rank metric's mean over all orders of tied distances; `--ties reference`
reproduces the reference code (ties ranked by database index, as `--ties
index`). `--no-relevant zero|exclude` sets how queries without a relevant
item enter the means (default: 0 for map@K, P@K and PR; excluded for
map_trunc@K).
"""

import json
import os

import numpy as np

from configs import cli
from jaxcxai.atomic_files import atomic_write, write_text_atomic
from jaxcxai.metrics import retrieval

CROSS_MODAL = ("query_image", "query_text", "db_image", "db_text")
SINGLE = ("query_codes", "db_codes")


def load_codes(path: str, binarize: bool) -> tuple[dict, np.ndarray, np.ndarray]:
    """Reads an npz: returns ({name: codes}, query_labels, db_labels)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No codes file at {path}.")
    with np.load(path) as data:
        keys = set(data.files)
        names = CROSS_MODAL if set(CROSS_MODAL) <= keys else SINGLE
        missing = (set(names) | {"query_labels", "db_labels"}) - keys
        if missing:
            raise KeyError(
                f"{path} lacks {sorted(missing)}; expected {list(CROSS_MODAL)} or "
                f"{list(SINGLE)}, plus query_labels and db_labels (has {sorted(keys)})."
            )
        codes = {name: data[name] for name in names}
        labels = data["query_labels"], data["db_labels"]
    if binarize:
        codes = {
            name: np.where(c >= 0, 1, -1).astype(np.int8) for name, c in codes.items()
        }
    return codes, *labels


def evaluate(codes: dict, query_labels, db_labels, **kwargs) -> dict:
    """{direction: metrics} for the cross-modal or the single layout."""
    if "query_image" in codes:
        return retrieval.cross_modal_metrics(
            codes["query_image"],
            codes["query_text"],
            codes["db_image"],
            codes["db_text"],
            query_labels,
            db_labels,
            **kwargs,
        )
    out = retrieval.retrieval_metrics(
        codes["query_codes"], codes["db_codes"], query_labels, db_labels, **kwargs
    )
    return {"q2d": out}


def markdown_table(results: dict) -> str:
    """One row per scalar metric, one column per direction."""
    directions = list(results)
    keys = [k for k, v in results[directions[0]].items() if np.ndim(v) == 0]
    lines = ["| metric | " + " | ".join(directions) + " |"]
    lines.append("|---" * (len(directions) + 1) + "|")
    for key in keys:
        cells = " | ".join(f"{results[d][key]:.4f}" for d in directions)
        lines.append(f"| {key} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_pr(results: dict, path: str) -> None:
    """Precision-recall over Hamming radius, and precision vs radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_pr, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
    for name, metrics in results.items():
        prec, rec = metrics["pr_precision"], metrics["pr_recall"]
        ax_pr.plot(rec, prec, marker=".", label=name)
        ax_r.plot(np.arange(len(prec)), prec, label=name)
    ax_pr.set(xlabel="recall", ylabel="precision", title="PR over Hamming radius")
    ax_r.set(
        xlabel="Hamming radius", ylabel="precision", title="precision within radius"
    )
    for ax in (ax_pr, ax_r):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def _map_k(text: str):
    return "all" if text == "all" else cli.positive_int(text)


def main(argv=None) -> dict:
    """`python -m eval.retrieval`; a user mistake is one `error:` line."""
    return cli.guard(_main, argv)


def _main(argv) -> dict:
    p = cli.ArgumentParser(
        prog="python -m eval.retrieval", description=__doc__.splitlines()[0]
    )
    p.add_argument("--codes", required=True, help="npz with codes and labels")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--map-k", nargs="+", type=_map_k, default=[20], help="K values or 'all'"
    )
    p.add_argument(
        "--pk-k",
        nargs="+",
        type=cli.positive_int,
        default=list(retrieval.REFERENCE_PK_KS),
    )
    p.add_argument(
        "--radii", nargs="+", type=cli.non_negative_int,
        default=list(retrieval.REFERENCE_RADII),
    )  # fmt: skip
    p.add_argument("--normalize", choices=("min_k_r", "hits"), default="min_k_r")
    p.add_argument("--ties", choices=retrieval.TIES, default="expected")
    p.add_argument("--no-relevant", choices=retrieval.NO_RELEVANT, default=None)
    p.add_argument("--binarize", action="store_true", help="map x >= 0 to +1, else -1")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise cli.ConfigError(f"--out {args.out} is a file, not a directory")

    codes, query_labels, db_labels = load_codes(args.codes, args.binarize)
    map_ks = tuple(None if k == "all" else k for k in args.map_k)
    results = evaluate(
        codes,
        query_labels,
        db_labels,
        map_ks=map_ks,
        pk_ks=tuple(args.pk_k),
        radii=tuple(args.radii),
        normalize=args.normalize,
        ties=args.ties,
        no_relevant=args.no_relevant,
    )
    os.makedirs(args.out, exist_ok=True)
    as_json = {
        d: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in m.items()}
        for d, m in results.items()
    }
    write_text_atomic(
        os.path.join(args.out, "retrieval_metrics.json"), json.dumps(as_json, indent=2)
    )
    table = markdown_table(results)
    write_text_atomic(os.path.join(args.out, "retrieval_metrics.md"), table)
    plot_pr(results, os.path.join(args.out, "pr_curve.png"))
    print(table)
    return results


if __name__ == "__main__":
    main()
