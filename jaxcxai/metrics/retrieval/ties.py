"""Tie-aware expected AP@K and P@K: the mean over all orders of tied items.

McSherry & Najork (2008), "Computing information retrieval performance
measures efficiently in the presence of tied scores" (ECIR): a metric of a
ranking with tied scores is replaced by its expected value when every tie
group is ordered uniformly at random (all n_g! orders equally likely,
independently per group). Hamming ranking ties everything at one distance,
so a query is summarised by its histograms over distance g = 0..b: n_g items
and r_g relevant items, s_g = sum_{h<g} n_h items and c_g = sum_{h<g} r_h
relevant items ranked before the group. No order is enumerated.

Position i = s_g + t (t = 1..n_g) of group g is relevant with probability
r_g / n_g, and given that, the relevant items up to it number
c_g + 1 + (t - 1) rho_g, rho_g = (r_g - 1) / (n_g - 1) (0 when n_g = 1). So
the expected sum of rel_i * hits_i / i over the first m positions of g is

  S_g(m) = (r_g / n_g) [(c_g + 1 - (s_g + 1) rho_g) (H_{s_g+m} - H_{s_g})
                        + rho_g m],                 H_x = sum_{i<=x} 1 / i,

with H_{s+m} - H_s = digamma(s + m + 1) - digamma(s + 1) (`_span`). From it:
  * P@K: E[hits in the top k] = sum_g r_g min(n_g, max(0, k - s_g)) / n_g.
  * standard AP@K with Z = min(K, R): sum_g S_g(clip(K - s_g, 0, n_g)) / Z.
  * standard AP@K with Z = hits in the top K (random when K cuts group g*):
    conditioning on X ~ Hypergeometric(K - s*, n*, r*) relevant items above
    the cut, E = sum_x P(X = x) (sum_{g<g*} S_g(n_g) + S'(x)) / (c* + x),
    where S' is S_{g*} of a group of K - s* items with x relevant.
  * reference AP@K (T = min(K, R) first relevant items, full list): groups
    with c_g + r_g <= T add S_g(n_g); the group holding the T-th relevant
    item is cut at its J = T - c_g-th relevant item, not at a position, and
    has no per-group closed form. Its exact expectation is one O(n_g) sum
    over its positions, sum_t (r/n) E[(c + 1 + Y_t) 1{Y_t < J}] / (s + t),
    Y_t ~ Hypergeometric(t - 1, n - 1, r - 1), by hypergeometric CDFs.
Float64 NumPy throughout: H differences cancel, so float32 would not do.
"""

import numpy as np
from scipy import special

from jaxcxai.metrics.retrieval.ranking import _histograms

TIES = ("expected", "index", "reference")
NO_RELEVANT = ("zero", "exclude")
_BLOCK = 1 << 20  # elements per temporary of the per-position sums


def _check_ties(ties, no_relevant) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}; got {ties!r}.")
    if no_relevant is not None and no_relevant not in NO_RELEVANT:
        raise ValueError(
            f"no_relevant must be None or one of {NO_RELEVANT}; got {no_relevant!r}."
        )
    if ties == "reference" and no_relevant == "exclude":
        raise ValueError(
            "no_relevant='exclude' contradicts ties='reference' (the reference "
            "code counts such queries as 0); use ties='index'."
        )


def _span(s, m):
    """H_{s+m} - H_s = digamma(s + m + 1) - digamma(s + 1), s, m >= 0.

    For s + 1 >= 100 the difference of digamma's asymptotic series is taken
    term by term in factored form, so it keeps its relative accuracy when
    m << s (the plain difference would lose it to cancellation, and S_g
    multiplies it by s).
    """
    x = np.asarray(s, np.float64) + 1.0
    m = np.asarray(m, np.float64)
    y = x + m
    xs = np.maximum(x, 100.0)  # the series branch, kept finite elsewhere
    ys = xs + m
    a, b = xs * ys, xs * xs + ys * ys
    series = (
        np.log1p(m / xs)
        + m / (2 * a)
        + m * (xs + ys) / (12 * a * a)
        - m * (xs + ys) * b / (120 * a**4)
        + m * (xs + ys) * (b + a) * (b - a) / (252 * a**6)
    )
    small = special.digamma(np.minimum(y, 100.0 + m)) - special.digamma(
        np.minimum(x, 100.0)
    )
    return np.where(x >= 100.0, series, small)


def _prefix_sum(s, c, n, r, m):
    """S_g(m): expected sum of rel_i * hits_i / i over a group's first m places."""
    s, c, n, r, m = (np.asarray(x, np.float64) for x in (s, c, n, r, m))
    rho = np.where(n > 1, (r - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
    val = (r / np.maximum(n, 1.0)) * (
        (c + 1.0 - (s + 1.0) * rho) * _span(s, m) + rho * m
    )
    return np.where((r > 0) & (m > 0), val, 0.0)


def _log_comb(n, k):
    n, k = np.maximum(n, 0.0), np.clip(k, 0.0, np.maximum(n, 0.0))
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


def _hyp_pmf(x, draws, pop, succ):
    """P(X = x), X ~ Hypergeometric(draws, pop, succ); broadcasts, 0 off support."""
    x, draws, pop, succ = (np.asarray(v, np.float64) for v in (x, draws, pop, succ))
    ok = (x >= 0) & (x <= succ) & (draws - x >= 0) & (draws - x <= pop - succ)
    ok &= draws <= pop
    logp = _log_comb(succ, x) + _log_comb(pop - succ, draws - x) - _log_comb(pop, draws)
    return np.where(ok, np.exp(np.where(ok, logp, 0.0)), 0.0)


def _hyp_cdf_by_draws(a, pop, succ, count):
    """(rows, count): P(X_d <= a) for d = 0..count-1 draws, per row.

    P(X_d <= a) - P(X_{d+1} <= a) = P(X_d = a) (succ - a) / (pop - d): the
    next draw is a success. Summed from the top (P(X_pop <= a) = [succ <= a])
    down, so small tails keep their relative accuracy. 0 where a < 0;
    count must exceed every pop.
    """
    a, pop, succ = (np.asarray(v, np.float64)[:, None] for v in (a, pop, succ))
    d = np.arange(count, dtype=np.float64)[None]
    rate = np.where(pop - d > 0, (succ - a) / np.maximum(pop - d, 1.0), 0.0)
    step = _hyp_pmf(a, d, pop, succ) * rate
    cdf = np.cumsum(step[:, ::-1], axis=1)[:, ::-1] + (succ <= a)
    return np.where(a >= 0, np.clip(cdf, 0.0, 1.0), 0.0)


def _blocks(rows: int, width: int):
    step = max(1, _BLOCK // max(width, 1))
    return (slice(b, b + step) for b in range(0, rows, step))


def _reference_cut(s, c, n, r, j):
    """Expected sum_{m <= c + j} m / p_m over a group cut at its j-th relevant item.

    1-D arrays, one row per query whose T-th relevant item lies in this
    group (1 <= j < r). Position t holds relevant item number c + 1 + Y_t
    (Y_t relevant among the t - 1 places above it) with probability r / n;
    E[Y 1{Y <= a}] = ((t-1)(r-1)/(n-1)) P(Y' <= a - 1), Y' ~ Hyp(t-2, n-2, r-2).
    """
    out = np.zeros(s.shape[0])
    width = int(n.max(initial=0))
    t = np.arange(1, width + 1, dtype=np.float64)[None]
    for b in _blocks(s.shape[0], width):
        sb, cb, nb, rb, jb = (x[b].astype(np.float64)[:, None] for x in (s, c, n, r, j))
        f1 = _hyp_cdf_by_draws(jb[:, 0] - 1, nb[:, 0] - 1, rb[:, 0] - 1, width)
        f2 = _hyp_cdf_by_draws(jb[:, 0] - 2, nb[:, 0] - 2, rb[:, 0] - 2, width)
        f2 = np.pad(f2[:, :-1], ((0, 0), (1, 0)))  # draws t - 2; t = 1 adds 0
        coef = (t - 1) * (rb - 1) / np.maximum(nb - 1, 1)
        terms = ((cb + 1) * f1 + coef * f2) / (sb + t)
        out[b] = (rb[:, 0] / nb[:, 0]) * np.where(t <= nb, terms, 0.0).sum(axis=1)
    return out


def _hits_cut(s, c, n, r, m, before):
    """Expected AP with Z = hits in the top K when K cuts a group after m places.

    1-D arrays per query; `before` is the expected numerator of the groups
    above the cut group. X relevant items above the cut occupy a uniformly
    random x-subset of its m places.
    """
    out = np.zeros(s.shape[0])
    width = int(np.minimum(m, r).max(initial=0)) + 1
    x = np.arange(width, dtype=np.float64)[None]
    for b in _blocks(s.shape[0], width):
        sb, cb, nb, rb, mb, bb = (
            v[b].astype(np.float64)[:, None] for v in (s, c, n, r, m, before)
        )
        p = _hyp_pmf(x, mb, nb, rb)
        num = bb + _prefix_sum(sb, cb, mb, x, mb)
        hits = cb + x
        val = np.where(hits > 0, num / np.maximum(hits, 1.0), 0.0)
        out[b] = (p * val).sum(axis=1)
    return out


def _expected_stats(n, r, map_ks, pk_ks, normalize) -> dict:
    """Per-query tie-aware "ref@K", "std@K", "pk_hits" from (Q, G) histograms.

    Same keys and conventions as `ranking._chunk_stats` (reference AP 0 and
    standard AP NaN for a query without relevant items); "pk_hits" holds
    expected hit counts (floats).
    """
    n, r = np.asarray(n, np.int64), np.asarray(r, np.int64)
    s, c = np.cumsum(n, axis=1) - n, np.cumsum(r, axis=1) - r
    total, num_rel = n.sum(axis=1), r.sum(axis=1)
    full = _prefix_sum(s, c, n, r, n)
    stats = {}
    for k in map_ks:
        kk = total if k is None else np.minimum(k, total)
        m = np.clip(kk[:, None] - s, 0, n)
        num = _prefix_sum(s, c, n, r, m).sum(axis=1)
        if normalize == "min_k_r":
            ap = num / np.maximum(np.minimum(kk, num_rel), 1)
        else:
            cut = (m > 0) & (m < n)  # at most one group per query
            above = m == n
            hits = np.where(above, r, 0).sum(axis=1)
            ap = np.where(hits > 0, num / np.maximum(hits, 1), 0.0)
            q, g = np.nonzero(cut)
            if q.size:
                before = np.where(above, full, 0.0).sum(axis=1)[q]
                ap[q] = _hits_cut(s[q, g], c[q, g], n[q, g], r[q, g], m[q, g], before)
        stats[f"std@{k}"] = np.where(num_rel > 0, ap, np.nan)
        t = np.minimum(kk, num_rel)[:, None]
        ref = np.where(c + r <= t, full, 0.0).sum(axis=1)
        q, g = np.nonzero((c < t) & (c + r > t))
        if q.size:
            j = t[q, 0] - c[q, g]
            ref[q] += _reference_cut(s[q, g], c[q, g], n[q, g], r[q, g], j)
        stats[f"ref@{k}"] = ref / np.maximum(t[:, 0], 1)
    if pk_ks:
        kk = np.minimum(np.asarray(pk_ks, np.int64)[None, :], total[:, None])
        m = np.clip(kk[:, :, None] - s[:, None, :], 0, n[:, None, :])
        frac = m / np.maximum(n, 1)[:, None, :]
        stats["pk_hits"] = (frac * r[:, None, :]).sum(axis=2)
    return stats


def _chunk_stats(dist, rel, map_ks, pk_ks, normalize, nbins, cumulative) -> dict:
    """Tie-aware counterpart of `ranking._chunk_stats` for one query chunk.

    Args:
      dist: (Qc, N) integer distances in [0, nbins).
      rel: (Qc, N) bool relevance.
      cumulative: also return "n_cum", "r_cum" (PR curve and radius metrics).
    """
    n, r = _histograms(dist, rel, nbins)
    stats = {"num_rel": r.sum(axis=1)}
    if cumulative:
        stats["n_cum"], stats["r_cum"] = np.cumsum(n, axis=1), np.cumsum(r, axis=1)
    stats.update(_expected_stats(n, r, map_ks, pk_ks, normalize))
    return stats
