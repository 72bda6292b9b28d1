"""Retrieval evaluation of trained hash nets: codes of the query and
database parts, mAP@K in the four directions, and the codes file.

`evaluate` is the evaluator `train.hashing` runs at its evaluation epochs;
`save_codes` writes the `codes.npz` layout that `eval.retrieval` reads.
`evaluate` rejects non-finite features (`NonFiniteError`, naming the part and
modality); the metrics check their own codes (`jaxcxai.metrics.retrieval`).
"""

import numpy as np

from jaxcxai.atomic_files import atomic_write
from jaxcxai.checks import check_finite
from jaxcxai.hashing import state as hash_state
from jaxcxai.metrics import retrieval

__all__ = ["DIRECTIONS", "evaluate", "map_at_k", "save_codes"]

DIRECTIONS = {"i2t": ("img", "txt"), "t2i": ("txt", "img")}
DIRECTIONS.update({"i2i": ("img", "img"), "t2t": ("txt", "txt")})


def map_at_k(
    query_codes, db_codes, query_labels, db_labels, k, untruncated, ties="reference"
):
    """mAP@K: the reference's untruncated form (a quirk of the reference
    code's `calc_map_k`) or the standard AP@K truncated at K, normalised by
    min(K, R). `ties` is the tie rule of `jaxcxai.metrics.retrieval`; the
    default "reference" (ties ranked by database index) reproduces the
    reference code's numbers, "expected" averages over all tie orders."""
    semantics = "reference" if untruncated else "standard"
    return retrieval.mean_average_precision(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        k,
        semantics=semantics,
        ties=ties,
    )


def evaluate(
    state, query: dict, db: dict, ks, untruncated: bool, ties: str = "reference"
) -> dict:
    """mAP@K of the four directions and their mean for each K in `ks`.

    `ties` goes to `map_at_k`: "reference" (default) reproduces the reference
    code's numbers, "expected" is the tie-aware mean over all tie orders.

    Raises:
      NonFiniteError: a feature array (`query['img']`, ...) holds NaN or inf.
    """
    feats = {
        (s, m): np.asarray(part[m], np.float32)
        for s, part in (("q", query), ("db", db))
        for m in ("img", "txt")
    }
    names = {"q": "query", "db": "db"}
    check_finite({f"{names[s]}[{m!r}]": x for (s, m), x in feats.items()})
    codes = {
        (s, m): hash_state._encode(state, x, m, 1024) for (s, m), x in feats.items()
    }
    out = {}
    for k in ks:
        for name, (mq, md) in DIRECTIONS.items():
            out[f"map@{k}/{name}"] = map_at_k(
                codes["q", mq],
                codes["db", md],
                query["labels"],
                db["labels"],
                k,
                untruncated,
                ties,
            )
        out[f"map@{k}/avg"] = float(np.mean([out[f"map@{k}/{d}"] for d in DIRECTIONS]))
    return out, codes


def save_codes(path: str, codes: dict, data: dict) -> None:
    """Writes `codes.npz` (atomically: a temporary file, then a rename).

    Args:
      path: output file.
      codes: {(part, modality): (M, K) +-1 codes} for part in ('q', 'db')
        and modality in ('img', 'txt'), as `evaluate` returns them.
      data: the features dict, for the parts' labels and image indices.
    """
    arrays = dict(
        # eval.retrieval's names, and the short ones of earlier runs.
        query_image=codes["q", "img"],
        query_text=codes["q", "txt"],
        db_image=codes["db", "img"],
        db_text=codes["db", "txt"],
        query_img=codes["q", "img"],
        query_txt=codes["q", "txt"],
        db_img=codes["db", "img"],
        db_txt=codes["db", "txt"],
        query_labels=data["query"]["labels"],
        db_labels=data["db"]["labels"],
        query_image_idx=data["query"]["image_idx"],
        db_image_idx=data["db"]["image_idx"],
    )
    atomic_write(path, lambda f: np.savez(f, **arrays))
