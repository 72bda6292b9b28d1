"""Dictionary matching: Hungarian assignment on cosine similarity.

Two dictionaries (k1, d) and (k2, d) of the same layer are matched one to
one by the assignment that maximizes the summed cosine similarity (Kuhn
1955; scipy `linear_sum_assignment`), which is how discovered concepts are
compared across seeds, data subsets, attacks and with supervised vectors
(CAVs, Net2Vec weights). `absolute=True` matches on |cos| for methods whose
components have no sign (PCA, ICA). Runs on the host in float64: the
matrices are small (k x k) and the assignment is sequential.

Stability (seed or data-subset stability of a discovery method) is the mean
matched cosine over all pairs of S dictionaries.
"""

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from jaxcxai.concepts.discovery.common import check_finite

__all__ = [
    "Match",
    "cosine_matrix",
    "match",
    "match_stats",
    "stability",
    "match_to_reference",
    "subsets",
]


class Match(NamedTuple):
    """A one-to-one matching of min(k1, k2) pairs.

    Attributes:
      rows: (p,) indices into the first dictionary (ascending).
      cols: (p,) matched indices into the second.
      cosine: (p,) cosine (|cos| with `absolute`) of each matched pair.
    """

    rows: np.ndarray
    cols: np.ndarray
    cosine: np.ndarray


def _dictionary(a, name):
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty (k, d) array, got {a.shape}")
    check_finite(a, name)
    return a


def cosine_matrix(a, b):
    """Cosine similarity (k1, k2) between the rows of a (k1, d) and b (k2, d).

    Zero rows have cosine 0 with everything.
    """
    a, b = _dictionary(a, "a"), _dictionary(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must share d, got {a.shape[1]} and {b.shape[1]}")
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na > 0, na, 1.0)) @ (b / np.where(nb > 0, nb, 1.0)).T


def match(a, b, *, absolute=False):
    """Hungarian matching of two dictionaries by (absolute) cosine similarity.

    Args:
      a: (k1, d) components.
      b: (k2, d) components.
      absolute: match on |cos| (sign-free components).

    Returns:
      `Match` of min(k1, k2) pairs maximizing the summed similarity.
    """
    cos = cosine_matrix(a, b)
    sim = np.abs(cos) if absolute else cos
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return Match(rows, cols, sim[rows, cols])


def match_stats(cosine):
    """Summary of matched cosines: mean, median, min and the fraction >= 0.9."""
    c = np.asarray(cosine, np.float64)
    return {
        "mean": float(c.mean()),
        "median": float(np.median(c)),
        "min": float(c.min()),
        "frac_above_0.9": float(np.mean(c >= 0.9)),
    }


def stability(dictionaries: Sequence, *, absolute=False):
    """Mean matched cosine between every pair of S dictionaries.

    Args:
      dictionaries: S arrays (k, d) (or one (S, k, d) array), e.g. one per
        seed or per data subset.
      absolute: match on |cos|.

    Returns:
      (pairwise (S, S) matrix of mean matched cosines with ones on the
      diagonal, and `match_stats` of all pairs' matched cosines with
      "pairs" added).
    """
    dicts = [np.asarray(d) for d in dictionaries]
    s = len(dicts)
    if s < 2:
        raise ValueError(f"stability needs at least 2 dictionaries, got {s}")
    pair = np.eye(s)
    matched = []
    for i, j in itertools.combinations(range(s), 2):
        m = match(dicts[i], dicts[j], absolute=absolute)
        pair[i, j] = pair[j, i] = m.cosine.mean()
        matched.append(m.cosine)
    stats = match_stats(np.concatenate(matched))
    stats["pairs"] = s * (s - 1) // 2
    stats["mean_of_pairs"] = float(np.mean([c.mean() for c in matched]))
    return pair, stats


def match_to_reference(components, vectors, names=None, *, absolute=False):
    """Matches discovered components with supervised vectors of the layer.

    Args:
      components: (k, d) discovered dictionary.
      vectors: (c, d) supervised concept vectors (CAVs, Net2Vec weights).
      names: optional c concept names (default "0", "1", ...).
      absolute: match on |cos|.

    Returns:
      dict name -> {"hungarian": component index or None (when c > k and the
      concept was left out), "hungarian_cos", "best": argmax component,
      "best_cos"}; the one-to-one assignment and the unconstrained best match.
    """
    cos = cosine_matrix(vectors, components)
    sim = np.abs(cos) if absolute else cos
    names = [str(i) for i in range(sim.shape[0])] if names is None else list(names)
    if len(names) != sim.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {sim.shape[0]} vectors")
    m = match(vectors, components, absolute=absolute)
    assigned = dict(zip(m.rows.tolist(), m.cols.tolist()))
    out = {}
    for i, name in enumerate(names):
        j = assigned.get(i)
        out[name] = {
            "hungarian": j,
            "hungarian_cos": None if j is None else float(sim[i, j]),
            "best": int(sim[i].argmax()),
            "best_cos": float(sim[i].max()),
        }
    return out


def subsets(seed, n, num, fraction=0.5):
    """`num` random subsets (sorted index arrays) of round(fraction n) rows,
    drawn without replacement, for data-subset stability."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    size = max(1, round(fraction * n))
    return [np.sort(rng.choice(n, size, replace=False)) for _ in range(num)]
