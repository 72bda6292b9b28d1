"""The gating study wired end to end: one dataset through `pipeline`, its
numbers against scikit-learn / scipy / NumPy recomputations, the findings
checks on constructed results, and the report's side-by-side tables."""

import dataclasses

import jax
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from jaxcxai.data.tabular import load_embedded
from jaxcxai.uncertainty import findings, models, paper, pipeline, report, study
from jaxcxai.uncertainty.forest import fit_forest

S = study


def _tiny(**kw):
    base = S.GatingStudy(
        experiments=("e1", "e2", "e4", "faithfulness"),
        data=S.Data(roles=("small_imbalanced",)),
        models=S.Models(names=("rf", "mlp"), forest_trees=15, mlp_epochs=3, mc_passes=5),
        explainers=S.Explainers(ig_steps=6),
        e2=S.E2(num_samples=12, perturbations=("gaussian",), combos=("rf:treeshap", "mlp:ig")),
        e3=S.E3(roles=()),
        e4=S.E4(roles=("small_imbalanced",), num_samples=27, num_versions=2,
                sigmas=(0.05, 0.2, 0.5), configs=("rf:treeshap",)),
        faithfulness=S.Faithfulness(configs=("rf:treeshap",), group_size=5, num_random=2),
        focus=S.Focus(roles=()),
        extras=S.Extras(roles=()),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


@pytest.fixture(scope="module")
def one_dataset():
    st = _tiny()
    S.check_study(st)
    splits = load_embedded("small_imbalanced")
    res, arrays = pipeline.run_dataset(splits, st, jax.random.key(3))
    return st, splits, res, arrays


def test_e1_f1_matches_sklearn(one_dataset):
    st, splits, res, _ = one_dataset
    forest = fit_forest(splits.x_train, splits.y_train, n_estimators=15)
    want = f1_score(splits.y_test, forest.predict(splits.x_test), average="weighted")
    row = next(r for r in res["table2"] if r["model"] == "rf")
    assert row["f1_plain"] == pytest.approx(want, abs=1e-6)
    assert row["f1"] == pytest.approx(want, abs=1e-6)  # RF: UQ mean = predict_proba


def test_e2_xec_is_spearman_of_its_sweep(one_dataset):
    _, _, res, arrays = one_dataset
    for cell in res["figure2"]:
        tau = arrays[
            f"small_imbalanced.e2.{cell['model']}.{cell['explainer']}.gaussian.tau"
        ]
        np.testing.assert_allclose(
            cell["xd"], tau.reshape(len(tau), -1).mean(1), atol=1e-6
        )
        want = spearmanr(cell["xd"], cell["eg"])[0]
        assert cell["xec"] == pytest.approx(want, abs=1e-6)


def test_e4_e5_from_the_pool_by_hand(one_dataset):
    st, _, res, arrays = one_dataset
    u = arrays["small_imbalanced.pool.rf:treeshap.u"]
    tau = arrays["small_imbalanced.pool.rf:treeshap.tau"].astype(np.float64)
    assert u.shape == tau.shape == (27 * 3,)

    def accepted(nu):
        # The float64 linear quantile, compared in the pool's float32: a
        # threshold that lands exactly on a (tied) pool value accepts it.
        return u <= np.float32(np.quantile(u.astype(np.float64), 1.0 - nu))

    for row in res["table3"]:
        acc = accepted(row["nu"])
        stable = tau >= 0.7
        assert row["precision"] == pytest.approx(np.mean(stable[acc]), abs=1e-6)
        assert row["recall"] == pytest.approx(
            np.sum(stable & acc) / np.sum(stable), abs=1e-6
        )
    for row in res["table4"]:
        acc = accepted(row["nu"])
        assert row["tau_mean"] == pytest.approx(tau[acc].mean(), abs=1e-5)
        assert row["q"] == pytest.approx(1.0 - row["nu"], abs=1e-6)  # RF: m = 0


def test_cost_of_the_papers_worked_example():
    ex = S.Explainers(lime_samples=5000)
    m, d = models.cost("mlp", "lime", S.Models(mc_passes=50), ex)
    assert m / d == pytest.approx(0.01)
    assert m / d + (1 - 0.7) == pytest.approx(
        paper.TABLE4["Wine Quality"]["mlp:lime"][0.7][2]
    )


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(e2=S.E2(combos=("rf:ig",))), "not a 'model:explainer'"),
        (dict(models=S.Models(names=("rf",))), "needs model 'mlp'"),
        (dict(experiments=("e9",)), "unknown"),
        (dict(image=S.Image(source="cifar")), "image.source"),
    ],
)
def test_check_study_names_the_bad_setting(change, match):
    with pytest.raises(ValueError, match=match):
        S.check_study(dataclasses.replace(S.GatingStudy(), **change))


def _results(xecs, e3=None, table3=None, image=None):
    cells = [
        {"dataset": "d", "model": m, "explainer": e, "perturbation": p, "xec": x,
         "xd": [0.9, 0.8, 0.7], "eg": [1.0, 1.2, 1.5]}
        for (m, e, p), x in xecs.items()
    ]  # fmt: skip
    r = {"name": "load_digits", "role": "multiclass_separated", "figure2": cells,
         "figure3": e3 or [], "table3": table3 or [], "num_features": 64,
         "num_classes": 10, "sizes": [1, 2, 3]}  # fmt: skip
    out = {"datasets": {"multiclass_separated": r}, "embedded": True}
    if image:
        out["image"] = image
    return out


def test_findings_follow_the_numbers():
    res = _results(
        {("rf", "treeshap", "gaussian"): -0.9, ("rf", "lime", "gaussian"): -0.3,
         ("mlp", "ig", "gaussian"): -0.2, ("mlp", "sig", "gaussian"): -0.8,
         ("rf", "treeshap", "permutation"): 0.1},
        e3=[{"tau_low": 0.9, "tau_medium": 0.8, "tau_high": 0.5}],
        table3=[{"nu": 0.1, "precision": 0.9}, {"nu": 0.5, "precision": 0.8}],
        image={"xec": {"ig": -1.0, "smoothgrad": -0.2}},
    )  # fmt: skip
    got = {f["finding"].split(":")[0]: f["holds"] for f in findings.check_findings(res)}
    assert got["XEC is strongly negative (< -0.6) in nearly all settings"] is False
    assert got["SHAP (Tree/Kernel) vs LIME"] is True
    assert got["IG vs SmoothIG (MLP)"] is False
    assert got["permutation is the weakest perturbation (highest mean XEC)"] is True
    assert got["E3"] is True
    assert got["E4 (load_digits)"] is False  # precision falls with nu here
    assert got["image"] is False
    assert got["Gaussian sweeps"] is True


def test_report_sets_paper_numbers_beside_ours():
    res = _results({("rf", "treeshap", "gaussian"): -0.9})
    res["datasets"]["multiclass_separated"]["table3"] = [
        {"nu": 0.7, "precision": 0.5, "recall": 0.25, "coverage": 0.3}
    ]
    res["findings"] = findings.check_findings(res)
    md = report.markdown(S.GatingStudy(), res, [])
    line = next(ln for ln in md.splitlines() if ln.startswith("| 70% |"))
    # paper, on Dry Bean: 1.000 / 0.370; ours on load_digits: 0.5 / 0.25
    assert "| 1 / 0.37 | 0.5 / 0.25 |" in line
    assert "paper P / R (Dry Bean)" in md and "load_digits (plays Dry Bean)" in md
    assert "None" not in md
