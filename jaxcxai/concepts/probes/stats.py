"""Significance of TCAV scores: two-sided t-tests with Bonferroni correction.

TCAV (Kim et al., ICML 2018) repeats the CAV fit against many
random negative sets. A concept is significant for a (class, layer) if its
scores over the repeats differ from the scores of random-vs-random CAVs by a
two-sided two-sample t-test, after a Bonferroni correction over all
hypotheses tested in the study. The statistics run on the host (SciPy); the
inputs are small (concepts x repeats).
"""

import numpy as np
from scipy import stats as sps

__all__ = ["ttest_scores", "bonferroni", "tcav_significance"]


def ttest_scores(
    concept_scores, random_scores, equal_var: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-sample t-test per concept, as `scipy.stats.ttest_ind`.

    Args:
      concept_scores: (K, R) TCAV scores of K concepts over R random runs.
      random_scores: (R2,) random-vs-random scores shared by every concept,
        or (K, R2) one set per concept.
      equal_var: Student's t-test (True, TCAV's choice) or Welch's (False).

    Returns:
      (t, p), each (K,) float64. A concept with zero variance in both samples
      gets t = nan and p = nan (SciPy's convention).
    """
    c = np.atleast_2d(np.asarray(concept_scores, np.float64))
    r = np.asarray(random_scores, np.float64)
    if r.ndim == 1:
        r = np.broadcast_to(r, (c.shape[0], r.shape[0]))
    if r.ndim != 2 or r.shape[0] != c.shape[0]:
        raise ValueError(
            f"random_scores must be (R2,) or (K={c.shape[0]}, R2), got {r.shape}"
        )
    if c.shape[1] < 2 or r.shape[1] < 2:
        raise ValueError(
            "a t-test needs at least 2 scores per sample, got "
            f"{c.shape[1]} concept and {r.shape[1]} random scores"
        )
    res = sps.ttest_ind(c, r, axis=1, equal_var=equal_var)
    return np.asarray(res.statistic), np.asarray(res.pvalue)


def bonferroni(p_values, num_tests: int) -> np.ndarray:
    """Bonferroni-corrected p-values min(1, p * num_tests)."""
    if num_tests < 1:
        raise ValueError(f"num_tests must be >= 1, got {num_tests}")
    return np.minimum(np.asarray(p_values, np.float64) * num_tests, 1.0)


def tcav_significance(
    concept_scores,
    random_scores,
    alpha: float = 0.05,
    num_tests: int | None = None,
    equal_var: bool = True,
) -> dict[str, np.ndarray]:
    """Per-concept TCAV summary and significance.

    Args:
      concept_scores: (K, R) scores of K concepts over R random runs.
      random_scores: (R2,) or (K, R2) random-vs-random scores.
      alpha: family-wise significance level.
      num_tests: number of hypotheses the study tests (concepts x classes x
        layers); defaults to K, i.e. correcting over this call only.
      equal_var: see `ttest_scores`.

    Returns:
      Dict of (K,) arrays: `mean`, `std` (ddof=0) of the concept scores,
      `random_mean`, `t`, `p`, `p_corrected` and `significant`
      (p_corrected < alpha; False where p is nan).
    """
    c = np.atleast_2d(np.asarray(concept_scores, np.float64))
    r = np.asarray(random_scores, np.float64)
    t, p = ttest_scores(c, r, equal_var)
    num_tests = c.shape[0] if num_tests is None else num_tests
    p_corr = bonferroni(p, num_tests)
    return {
        "mean": c.mean(axis=1),
        "std": c.std(axis=1),
        "random_mean": np.broadcast_to(r.mean(axis=-1), (c.shape[0],)).copy(),
        "t": t,
        "p": p,
        "p_corrected": p_corr,
        "significant": np.nan_to_num(p_corr, nan=1.0) < alpha,
    }
