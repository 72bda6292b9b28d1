"""The gating experiments E1-E5 and faithfulness (arXiv:2603.29915, 4-5).

Independent references: sklearn's f1_score(average="weighted") per
bootstrap resample; every perturbed row the experiment explains is captured
by the test's explainer and all numbers are recomputed from those rows in
NumPy float64 (scipy.stats.kendalltau per sample on |phi|, spearmanr
across levels, ttest_ind for p10 vs p90); hand-counted pools for Tables 3-4;
a float64 NumPy removal shift. Sanity behaviour of the paper on the
embedded clean-binary set with a small random forest and TreeSHAP.
"""

import warnings

import jax
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import deferral as dfr
from jaxcxai.uncertainty import experiments as ex
from jaxcxai.uncertainty import quality

D = 6
_rs = np.random.RandomState(0)
W = _rs.randn(D)


class Recorder:
    """Deterministic explainer / estimator that records the rows it sees."""

    def __init__(self, fn):
        self.fn, self.rows = fn, []

    def __call__(self, x, key):
        x = np.asarray(x, np.float64)
        self.rows.append(x)
        return self.fn(x)


def _phi(x):  # a smooth nonlinear "explanation", no ties
    return x * W[None] + 0.3 * np.sin(3.0 * x)


def _u(x):  # a positive "uncertainty"
    return 0.05 + np.mean(x**2, axis=-1)


def _tau(a, b):  # (n, d) x (n, d) -> (n,) scipy Kendall tau-b on |phi|
    return np.array(
        [stats.kendalltau(np.abs(p), np.abs(q)).statistic for p, q in zip(a, b)]
    )


def test_e1_against_sklearn():
    n, k, b = 60, 3, 25
    y = _rs.randint(0, k, n)
    probs = _rs.dirichlet(np.ones(k), n)
    probs[np.arange(n)[:40], y[:40]] += 1.0  # better than chance
    probs /= probs.sum(1, keepdims=True)
    plain = _rs.dirichlet(np.ones(k), n)
    u = _rs.gamma(2.0, 0.01, n)
    key = jax.random.key(3)
    out, table = quality.e1_model_quality(
        y, probs, u, key, probs_plain=plain, num_resamples=b, dataset="d", model="m"
    )
    pred = probs.argmax(1)
    assert float(out["f1"]) == pytest.approx(
        f1_score(y, pred, average="weighted"), abs=1e-6
    )
    assert float(out["f1_plain"]) == pytest.approx(
        f1_score(y, plain.argmax(1), average="weighted"), abs=1e-6
    )
    idx = np.asarray(jax.random.randint(key, (b, n), 0, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array(
            [f1_score(y[i], pred[i], average="weighted", zero_division=0) for i in idx]
        )
    np.testing.assert_allclose(out["f1_boot"], ref, atol=1e-6)
    assert float(out["f1_std"]) == pytest.approx(ref.std(), abs=1e-6)
    assert float(out["u_epi_mean"]) == pytest.approx(u.mean(), rel=1e-5)
    assert float(out["cv_epi"]) == pytest.approx(u.std() / u.mean(), rel=1e-4)
    assert table[0]["dataset"] == "d" and table[0]["model"] == "m"
    assert table[0]["f1"] == pytest.approx(float(out["f1"]))
    # a resample lacking a class that is predicted: sklearn gives it weight 0
    yy, pp = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = f1_score(yy, pp, average="weighted", zero_division=0)
    assert float(quality.weighted_f1(yy, pp, 3)) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("given", [False, True])
def test_e2_against_scipy(given):
    n, levels, r = 15, (0.05, 0.3, 1.0, 2.0), 2
    x = _rs.randn(n, D).astype(np.float32)
    expl, unc = Recorder(_phi), Recorder(_u)
    key = jax.random.key(7)
    x_pert = None
    if given:  # e.g. adversarial inputs: (L, R, n, d) passed in
        x_pert = x[None, None] + np.asarray(levels)[:, None, None, None] * _rs.randn(
            len(levels), r, n, D
        ).astype(np.float32)
    out, table = ex.e2_correlation(
        x, expl, unc, key, levels=levels, n_realisations=r, x_pert=x_pert,
        labels=("rice", "RF", "TreeSHAP", "gaussian"),
    )  # fmt: skip
    assert len(expl.rows) == 1 and len(unc.rows) == 1  # one batched call each
    rows = expl.rows[0]
    np.testing.assert_array_equal(rows, unc.rows[0])
    np.testing.assert_allclose(rows[:n], x)
    pert = rows[n:].reshape(len(levels), r, n, D)
    if given:
        np.testing.assert_allclose(pert, x_pert)
    phi0, phip = _phi(rows[:n]), _phi(pert)
    tau = np.array([[_tau(phi0, phip[i, j]) for j in range(r)] for i in range(4)])
    np.testing.assert_allclose(out["tau"], tau, atol=1e-5)
    xd = tau.mean(axis=(1, 2))
    eg = _u(pert).mean(1).sum(1) / _u(rows[:n]).sum()
    np.testing.assert_allclose(out["xd"], xd, atol=1e-5)
    np.testing.assert_allclose(out["eg"], eg, rtol=1e-5)
    assert float(out["xec"]) == pytest.approx(stats.spearmanr(xd, eg).statistic)
    cell = table[0]
    assert (cell["dataset"], cell["explainer"]) == ("rice", "TreeSHAP")
    assert cell["xec"] == pytest.approx(float(out["xec"]))
    assert cell["strong"] == (cell["xec"] < -0.6)
    if not given:  # the Gaussian noise grows with sigma
        spread = [np.std(pert[i] - x[None]) for i in range(4)]
        assert np.all(np.diff(spread) > 0)


def test_e3_against_scipy():
    n, sigmas, seeds, per = 60, (0.1, 0.5), 3, 10
    x = _rs.randn(n, D).astype(np.float32)
    u = _rs.gamma(2.0, 0.01, n).astype(np.float32)
    expl = Recorder(_phi)
    out, table = ex.e3_stratified_stability(
        x, u, expl, jax.random.key(1), sigmas=sigmas, n_seeds=seeds,
        per_stratum=per, dataset="wine",
    )  # fmt: skip
    rows = expl.rows[0]
    pert = rows[n:].reshape(len(sigmas), seeds, n, D)
    phi0 = _phi(rows[:n])
    tau = np.array(
        [[_tau(phi0, _phi(pert[s, k])) for k in range(seeds)] for s in (0, 1)]
    )
    tau = tau.mean(1)
    np.testing.assert_allclose(out["tau"], tau, atol=1e-5)
    u64 = u.astype(np.float64)
    q1, q2 = np.quantile(u64, [1 / 3, 2 / 3])
    strat = (u64 > q1).astype(int) + (u64 > q2)
    np.testing.assert_array_equal(out["stratum"], strat)
    picked = np.asarray(out["picked"])
    assert picked.shape == (3, per)
    for s in range(3):
        assert len(set(picked[s])) == per and np.all(strat[picked[s]] == s)
    lo, hi = u64 <= np.quantile(u64, 0.1), u64 >= np.quantile(u64, 0.9)
    for i in range(2):
        np.testing.assert_allclose(
            out["stratum_mean"][i],
            [tau[i, picked[s]].mean() for s in range(3)],
            atol=1e-5,
        )
        np.testing.assert_allclose(
            out["stratum_std"][i],
            [tau[i, picked[s]].std() for s in range(3)],
            atol=1e-5,
        )
        t = stats.ttest_ind(tau[i, lo], tau[i, hi])
        delta = tau[i, lo].mean() - tau[i, hi].mean()
        assert float(out["delta"][i]) == pytest.approx(delta, abs=1e-5)
        assert float(out["t"][i]) == pytest.approx(t.statistic, rel=1e-4)
        assert float(out["p"][i]) == pytest.approx(t.pvalue, rel=1e-3, abs=1e-6)
        assert bool(out["passed"][i]) == (delta > 0.15 and t.pvalue < 0.05)
        assert table[i]["sigma"] == pytest.approx(sigmas[i])
        assert table[i]["tau_low"] == pytest.approx(float(out["stratum_mean"][i, 0]))


def test_mixed_noise_pool_against_numpy():
    n, sigmas, v = 8, (0.02, 0.1, 0.2), 4
    x = _rs.randn(n, D).astype(np.float32)
    expl, unc = Recorder(_phi), Recorder(_u)
    pool = dfr.mixed_noise_pool(
        x, expl, unc, jax.random.key(2), sigmas=sigmas, n_versions=v
    )
    rows = expl.rows[0]
    pert = rows[n:].reshape(len(sigmas), v, n, D)
    phi0 = _phi(rows[:n])
    tau = np.array([[_tau(phi0, _phi(pert[s, k])) for k in range(v)] for s in range(3)])
    np.testing.assert_allclose(pool["tau"], tau.mean(1).reshape(-1), atol=1e-5)
    np.testing.assert_allclose(pool["u"], _u(pert).mean(1).reshape(-1), rtol=1e-5)
    np.testing.assert_allclose(pool["sigma"], np.repeat(sigmas, n), rtol=1e-6)


# Hand-made pool: U = 0..9; stable (tau >= 0.7): samples 0, 1, 2, 4, 7.
U = np.arange(10.0)
TAU = np.array([0.9, 0.8, 0.75, 0.3, 0.95, 0.2, 0.1, 0.72, 0.4, 0.0])


def test_e4_hand_counted_pool():
    # nu = 0.9: Q_0.1(U) = 0.9 accepts {0}; 0.7: 2.7 -> {0,1,2}; 0.5: 4.5 ->
    # {0..4}; 0.3: 6.3 -> {0..6}; 0.1: 8.1 -> {0..8}.
    out, table = dfr.e4_deferral(U, TAU, dataset="bean")
    np.testing.assert_allclose(out["precision"], [1, 1, 4 / 5, 4 / 7, 5 / 9], atol=1e-6)
    np.testing.assert_allclose(
        out["recall"], [1 / 5, 3 / 5, 4 / 5, 4 / 5, 1], atol=1e-6
    )
    assert [r["nu"] for r in table] == pytest.approx([0.9, 0.7, 0.5, 0.3, 0.1])
    assert table[2]["precision"] == pytest.approx(0.8)
    assert table[0]["dataset"] == "bean"


def test_e5_hand_counted_pool():
    out, table = dfr.e5_cost(U, TAU, m=50, d=5000, dataset="rice", config="MLP + LIME")
    acc = [TAU[:3], TAU[:5], TAU[:7], TAU]  # nu = 70, 50, 30, 0 %
    np.testing.assert_allclose(out["tau_mean"], [a.mean() for a in acc], atol=1e-6)
    np.testing.assert_allclose(out["tau_std"], [a.std() for a in acc], atol=1e-6)
    np.testing.assert_allclose(out["q"], [0.31, 0.51, 0.71, 1.01], atol=1e-6)
    assert table[0]["config"] == "MLP + LIME" and table[3]["q"] == pytest.approx(1.01)


def _proba64(x):
    z = np.asarray(x, np.float64) @ _WP
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


_WP = _rs.randn(D, 3)


def test_faithfulness_groups_against_numpy():
    n, g, reps, ks = 30, 5, 3, (1, 2, 3)
    x = _rs.randn(n, D).astype(np.float32)
    phi = _rs.randn(n, D).astype(np.float32)
    u = _rs.rand(n).astype(np.float32)
    med = np.median(_rs.randn(50, D), axis=0).astype(np.float32)
    out, table = dfr.faithfulness_groups(
        u, x, phi, _proba64, med, jax.random.key(4), group_size=g, n_random=reps,
        ks=ks, dataset="rice", model="RF",
    )  # fmt: skip

    def lo(p):
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return np.log(p) - np.log(p[:, :1])

    shift = np.zeros((n, len(ks)))
    z0 = lo(_proba64(x))
    for j, k in enumerate(ks):
        xk = x.astype(np.float64).copy()
        for i in range(n):
            top = np.argsort(-np.abs(phi[i]), kind="stable")[:k]
            xk[i, top] = med[top]
        shift[:, j] = ((z0 - lo(_proba64(xk))) ** 2).mean(1)
    np.testing.assert_allclose(out["shift"], shift, rtol=1e-4, atol=1e-6)
    order = np.argsort(u)
    np.testing.assert_array_equal(out["low"], order[:g])
    np.testing.assert_array_equal(out["high"], order[-g:])
    rand = np.asarray(out["random"])
    assert rand.shape == (reps, g)
    for row in rand:
        assert len(set(row)) == g and not set(row) & (set(order[:g]) | set(order[-g:]))
    per = shift.mean(1)
    for i, idx in enumerate([order[:g], order[-g:], rand.reshape(-1)]):
        assert float(out["mean"][i]) == pytest.approx(per[idx].mean(), rel=1e-4)
        assert float(out["std"][i]) == pytest.approx(per[idx].std(), rel=1e-3)
        np.testing.assert_allclose(out["mean_k"][i], shift[idx].mean(0), rtol=1e-4)
    assert [r["group"] for r in table] == ["low", "high", "random"]
    with pytest.raises(ValueError, match="need >= 15"):
        dfr.faithfulness_groups(
            u[:14], x[:14], phi[:14], _proba64, med, jax.random.key(0), group_size=5
        )


def test_bad_inputs_raise():
    x = np.ones((4, D), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="x has 1"):
        ex.e2_correlation(x, Recorder(_phi), Recorder(_u), jax.random.key(0))
    with pytest.raises(NonFiniteError, match="u_epi"):
        quality.e1_model_quality([0, 1], np.eye(2), [0.1, np.inf], jax.random.key(0))
    with pytest.raises(ValueError, match="x_pert must be"):
        ex.e2_correlation(
            np.ones((4, D)), Recorder(_phi), Recorder(_u), jax.random.key(0),
            levels=(0.1, 0.2), x_pert=np.ones((3, 1, 4, D)),
        )  # fmt: skip
    bad = Recorder(lambda r: np.full(r.shape, np.nan))
    with pytest.raises(NonFiniteError, match="explain_fn"):
        ex.e2_correlation(np.ones((4, D)), bad, Recorder(_u), jax.random.key(0))


# --- the paper's sanity behaviour (section 1.9 substitutes) on real data ---


@pytest.fixture(scope="module")
def forest_setup():
    pytest.importorskip("shap")
    from jaxcxai.attribution.tree_shap import tree_shap
    from jaxcxai.data.tabular import load_embedded
    from jaxcxai.uncertainty.forest import fit_forest, forest_uncertainty

    data = load_embedded("clean_binary")
    forest = fit_forest(data.x_train, data.y_train, n_estimators=30)
    unc = lambda x, k: forest_uncertainty(forest, np.asarray(x), 2)  # noqa: E731
    expl = lambda x, k: tree_shap(forest, np.asarray(x, np.float64))  # noqa: E731
    return data, unc, expl


def test_sanity_e2_forest_treeshap(forest_setup):
    data, unc, expl = forest_setup
    out, _ = ex.e2_correlation(
        data.x_test[:40], expl, unc, jax.random.key(0), n_realisations=2
    )
    xd, eg = np.asarray(out["xd"]), np.asarray(out["eg"])
    assert xd[-1] < xd[0] - 0.2  # explanations drift with sigma
    assert eg[-1] > 1.5 * eg[0]  # epistemic uncertainty grows with sigma
    assert float(out["xec"]) < -0.6  # "strong"


def test_sanity_e4_forest_treeshap(forest_setup):
    data, unc, expl = forest_setup
    pool = dfr.mixed_noise_pool(
        data.x_test[:40], expl, unc, jax.random.key(1), n_versions=2
    )
    out, _ = dfr.e4_deferral(pool["u"], pool["tau"])
    p = np.asarray(out["precision"])
    assert p[0] > p[-1]  # deferring more keeps more stable explanations
    assert np.all(np.diff(p) <= 1e-6)  # precision never falls as nu rises
    assert float(out["auc"]) > 0.6


def test_sanity_e3_forest_treeshap(forest_setup):
    data, unc, expl = forest_setup
    u = unc(data.x_test, None).epistemic
    out, table = ex.e3_stratified_stability(
        data.x_test, u, expl, jax.random.key(2), sigmas=(0.1,), n_seeds=3,
        per_stratum=15,
    )  # fmt: skip
    m = np.asarray(out["stratum_mean"][0])
    assert m[0] > m[1] > m[2]  # low > medium > high stability
    assert m[0] > m[2] + 0.05
    # p10 group more stable than p90, significantly (random U: p >= 0.1;
    # the paper's pass rule, delta > 0.15, is not met at this size)
    assert float(out["delta"][0]) > 0.05 and float(out["p"][0]) < 1e-3
