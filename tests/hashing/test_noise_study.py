"""The caption-noise study's aggregation and verdict on hand-made runs."""

import numpy as np
import pytest

from jaxcxai.hashing import noise_study as ns


def _runs(values):
    """values: {(method, p): [avg mAP per seed]} -> runs with i2t = t2i."""
    return {
        f"{m}_{p}_{s}": {"method": m, "p": p, "seed": s, "i2t": v, "t2i": v,
                         "noisy_pairs": 0, "num_train": 10}
        for (m, p), vs in values.items() for s, v in enumerate(vs)
    }  # fmt: skip


def test_aggregate_mean_and_sample_std():
    agg = ns.aggregate(_runs({("DUCH", 0.0): [0.5, 0.7, 0.6]}))
    mean, std = agg["DUCH", 0.0]["avg"]
    assert mean == pytest.approx(0.6) and std == pytest.approx(
        np.std([0.5, 0.7, 0.6], ddof=1)
    )


@pytest.mark.parametrize(
    "chnr, duch, outcome",
    [
        ([0.80, 0.81, 0.79], [0.60, 0.62, 0.61], "chnr_better"),
        ([0.60, 0.62, 0.61], [0.80, 0.81, 0.79], "duch_better"),
        ([0.80, 0.60, 0.70], [0.70, 0.70, 0.71], "inconclusive"),
        ([0.90], [0.10], "one_seed"),
        # Paired differences 0.10 and 0.12: mean 0.11, SE 0.01, t = 11 < 12.7
        # (t_{0.975, 1}): two seeds cannot decide what z = 2 would.
        ([0.80, 0.82], [0.70, 0.70], "inconclusive"),
        ([0.80, 0.82, 0.81], [0.70, 0.70, 0.70], "chnr_better"),
    ],
)
def test_verdict_respects_seed_noise(chnr, duch, outcome):
    n = len(chnr)
    agg = ns.aggregate(_runs({("DUCH", 0.0): [0.9] * n, ("DUCH", 0.5): duch,
                              ("CHNR", 0.5): chnr}))  # fmt: skip
    v = ns.verdict(agg, (0.0, 0.5))["0.5"]
    diff = np.subtract(chnr, duch)
    assert v["outcome"] == outcome and v["seeds"] == n
    assert v["difference"] == pytest.approx(diff.mean())
    if n > 1:
        assert v["stderr"] == pytest.approx(diff.std(ddof=1) / np.sqrt(n))
        # The threshold is scipy's paired t-test at 5 %, two-sided.
        from scipy import stats

        p = stats.ttest_1samp(diff, 0.0).pvalue
        assert (p < 0.05) == (outcome != "inconclusive")
    assert v["duch_drop"] == pytest.approx(0.9 - np.mean(duch))
