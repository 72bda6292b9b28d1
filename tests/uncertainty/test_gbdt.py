"""GBDT estimators against independent references: float64 NumPy loops over
single-tree / staged predictions, leaf values read from the booster, and
scikit-learn's sigmoid calibration of the prefit booster."""

import sys

import numpy as np
import pytest

from jaxcxai.uncertainty import gbdt

EPS = 1e-8
FEW = dict(n_estimators=10)  # tiny boosters: fast, and every tree is kept


def _np_entropy(p):
    p = np.asarray(p, np.float64)
    return -np.sum(p * np.log(p + EPS), axis=-1)


def _data(k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(410, 4))
    if k == 2:
        y = (x[:, 0] + 0.7 * rng.normal(size=410) > 0).astype(int)
    else:
        y = np.argmax(x[:, :k] + 0.7 * rng.normal(size=(410, k)), axis=1)
    return (x[:240], y[:240]), (x[240:360], y[240:360]), x[360:]


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- LightGBM ------------------------------------------------------------------


@pytest.fixture(scope="module", params=[2, 3], ids=["binary", "3class"])
def lgbm(request):
    pytest.importorskip("lightgbm")
    k = request.param
    (x, y), (xv, yv), xt = _data(k)
    model = gbdt.fit_lightgbm(x, y, xv, yv, seed=0, **FEW)
    return k, model, xv, yv, xt


def test_lightgbm_tree_variance_matches_numpy_loop(lgbm):
    k, model, _, _, xt = lgbm
    b = model.booster
    assert b.current_iteration() == FEW["n_estimators"]
    members = []
    for t in range(b.current_iteration()):
        raw = b.predict(xt, start_iteration=t, num_iteration=1, raw_score=True)
        raw = np.asarray(raw, np.float64)
        if k == 2:
            s = 1 / (1 + np.exp(-raw))
            members.append(np.stack([1 - s, s], -1))
        else:
            members.append(_np_softmax(raw))
    want = np.var(np.stack(members), axis=0).mean(-1)
    est = gbdt.lightgbm_uncertainty(model, xt)
    assert est.epistemic.shape == (len(xt),) and est.probs.shape == (len(xt), k)
    assert np.all(want > 0)
    np.testing.assert_allclose(est.epistemic, want, rtol=1e-4, atol=1e-9)


def test_lightgbm_single_tree_scores_are_leaf_values(lgbm):
    # start_iteration=t, num_iteration=1 is iteration t's trees alone: the
    # value of the leaf each row lands in (tree index t * K' + class).
    k, model, _, _, xt = lgbm
    b = model.booster
    per_iter = 1 if k == 2 else k
    leaves = b.predict(xt, pred_leaf=True)  # (N, T * K')
    for t in (0, 4, 9):
        raw = np.asarray(
            b.predict(xt, start_iteration=t, num_iteration=1, raw_score=True)
        ).reshape(len(xt), per_iter)
        for c in range(per_iter):
            tree = t * per_iter + c
            want = [b.get_leaf_output(tree, int(leaf)) for leaf in leaves[:, tree]]
            np.testing.assert_allclose(raw[:, c], want, rtol=1e-12)


def test_lightgbm_probs_match_sklearn_sigmoid_calibration(lgbm):
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV

    frozen = pytest.importorskip("sklearn.frozen")  # scikit-learn >= 1.6

    k, model, xv, yv, xt = lgbm

    class RawScore(ClassifierMixin, BaseEstimator):
        """The prefit booster with its raw score as decision function."""

        def __init__(self, booster=None):
            self.booster = booster

        def fit(self, x, y):
            self.classes_ = np.arange(k)
            return self

        def decision_function(self, x):
            return self.booster.predict(x, raw_score=True)

        def predict(self, x):  # required by the API; unused by calibration
            raw = self.decision_function(x)
            return (raw > 0).astype(int) if k == 2 else raw.argmax(-1)

    prefit = RawScore(model.booster).fit(xv, yv)
    ref = CalibratedClassifierCV(frozen.FrozenEstimator(prefit), method="sigmoid")
    want = ref.fit(xv, yv).predict_proba(xt)
    est = gbdt.lightgbm_uncertainty(model, xt)
    np.testing.assert_allclose(est.probs, want, atol=2e-6)
    # Calibration changed something (else the test could not fail).
    raw = model.booster.predict(xt)
    uncal = np.stack([1 - raw, raw], -1) if k == 2 else raw
    assert np.max(np.abs(uncal - want)) > 1e-3
    np.testing.assert_allclose(est.aleatoric, _np_entropy(est.probs), atol=2e-6)


def test_lightgbm_uses_reference_settings(lgbm):
    assert gbdt.LGBM_SETTINGS == dict(
        n_estimators=200,
        learning_rate=0.05,
        max_depth=8,
        num_leaves=63,
        subsample=0.7,
        subsample_freq=1,
        colsample_bytree=0.7,
        early_stopping_rounds=20,
    )
    params = lgbm[1].booster.params
    assert params["max_depth"] == 8 and params["num_leaves"] == 63
    assert params["subsample"] == 0.7 and params["subsample_freq"] == 1


def test_lightgbm_early_stopping_truncates_to_best_iteration():
    pytest.importorskip("lightgbm")
    (x, y), (xv, yv), xt = _data(2, seed=3)
    model = gbdt.fit_lightgbm(x, y, xv, yv, n_estimators=400, early_stopping_rounds=3)
    b = model.booster
    assert 0 < b.best_iteration == b.current_iteration() < 400
    probs = gbdt.lightgbm_tree_probs(model, xt)
    assert probs.shape == (b.best_iteration, len(xt), 2)


# --- CatBoost ------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "3class"])
def test_catboost_staged_variance_matches_numpy_loop(k):
    pytest.importorskip("catboost")
    (x, y), (xv, yv), xt = _data(k, seed=1)
    model = gbdt.fit_catboost(x, y, xv, yv, seed=0, **FEW)
    assert model.tree_count_ == FEW["n_estimators"]
    staged = [np.asarray(p, np.float64) for p in model.staged_predict_proba(xt)]
    assert len(staged) == model.tree_count_
    want = np.var(np.stack(staged), axis=0).mean(-1)
    est = gbdt.catboost_uncertainty(model, xt)
    assert np.all(want > 0)
    np.testing.assert_allclose(est.epistemic, want, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(est.probs, model.predict_proba(xt), atol=1e-6)
    np.testing.assert_allclose(est.aleatoric, _np_entropy(est.probs), atol=2e-6)
    params = model.get_params()
    assert params["depth"] == 6 and params["l2_leaf_reg"] == 3
    assert params["learning_rate"] == 0.05


# --- optional extra ------------------------------------------------------------


@pytest.mark.parametrize(
    "fit, name", [(gbdt.fit_lightgbm, "lightgbm"), (gbdt.fit_catboost, "catboost")]
)
def test_missing_package_names_the_extra(monkeypatch, fit, name):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` now fails
    (x, y), (xv, yv), _ = _data(2)
    with pytest.raises(ImportError, match=r"jaxcxai\[gbdt\]"):
        fit(x, y, xv, yv, **FEW)
