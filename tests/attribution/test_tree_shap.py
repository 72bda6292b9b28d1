"""The TreeSHAP wrapper against shap.TreeExplainer called directly."""

import numpy as np
import pytest

shap = pytest.importorskip("shap")

from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from jaxcxai.attribution.tree_shap import tree_explainer, tree_shap  # noqa: E402


def test_random_forest_multiclass_equals_shap():
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(
        x, y
    )
    ref = shap.TreeExplainer(model).shap_values(x[:10])  # (10, 4, 3)
    np.testing.assert_allclose(
        np.asarray(tree_shap(model, x[:10], "all")), ref, rtol=1e-6, atol=1e-7
    )
    pred = model.predict_proba(x[:10]).argmax(1)
    got = np.asarray(tree_shap(model, x[:10]))
    np.testing.assert_allclose(got, ref[np.arange(10), :, pred], rtol=1e-6, atol=1e-7)
    t = np.arange(10) % 3
    got = np.asarray(tree_shap(model, x[:10], t, explainer=tree_explainer(model)))
    np.testing.assert_allclose(got, ref[np.arange(10), :, t], rtol=1e-6, atol=1e-7)


def test_binary_boosting_negates_for_class_zero():
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :8]
    model = GradientBoostingClassifier(
        n_estimators=10, max_depth=2, random_state=0
    ).fit(x, y)
    ref = shap.TreeExplainer(model).shap_values(x[:12])  # (12, 8): log-odds of class 1
    np.testing.assert_allclose(
        np.asarray(tree_shap(model, x[:12], 1)), ref, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        np.asarray(tree_shap(model, x[:12], 0)), -ref, rtol=1e-6, atol=1e-7
    )
    pred = model.predict(x[:12])
    want = np.where(pred[:, None] == 1, ref, -ref)
    np.testing.assert_allclose(
        np.asarray(tree_shap(model, x[:12])), want, rtol=1e-6, atol=1e-7
    )
    # the reference code's behaviour: class-1 values whatever the prediction
    got = np.asarray(tree_shap(model, x[:12], reference_binary=True))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_regressor_and_interventional_background():
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :6]
    model = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    ref = shap.TreeExplainer(model, data=x[:30]).shap_values(x[:5])
    got = np.asarray(tree_shap(model, x[:5], background=x[:30]))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_bad_inputs_name_the_argument():
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    bad = x[:3].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        tree_shap(model, bad)
    with pytest.raises(ValueError, match="target"):
        tree_shap(model, x[:3], 3)
    with pytest.raises(ValueError, match="x must have shape"):
        tree_shap(model, x[0])
    with pytest.raises(ValueError, match="reference_binary"):
        tree_shap(model, x[:3], reference_binary=True)
