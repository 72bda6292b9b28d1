"""Epistemic estimators against independent references (float64 NumPy, hand
values, scikit-learn per resample, loops over members)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import bootstrap, dropout, ensembles, entropy, forest

EPS = 1e-8


def _np_entropy(p):
    return -np.sum(p * np.log(p + EPS), axis=-1)


def _np_mi(p):
    p = np.asarray(p, np.float64)
    return np.maximum(_np_entropy(p.mean(0)) - _np_entropy(p).mean(0), 0.0)


def _data(n=90, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x[:, :k] + rng.normal(size=(n, k)), axis=1)
    return x, y


# --- entropy helpers ---------------------------------------------------------


def test_mutual_information_matches_float64_numpy():
    p = np.random.default_rng(1).dirichlet(np.ones(4) * 0.5, size=(7, 11))
    np.testing.assert_allclose(entropy.mutual_information(p), _np_mi(p), atol=2e-6)
    np.testing.assert_allclose(
        entropy.predictive_entropy(p), _np_entropy(p.mean(0)), atol=2e-6
    )
    np.testing.assert_allclose(
        entropy.expected_entropy(p), _np_entropy(p).mean(0), atol=2e-6
    )


def test_mutual_information_known_distributions():
    # Two confident, disagreeing members: MI = log 2; agreeing members: 0.
    p = np.array([[[1.0, 0.0], [0.3, 0.7]], [[0.0, 1.0], [0.3, 0.7]]])
    mi = np.asarray(entropy.mutual_information(p))
    np.testing.assert_allclose(mi[0], np.log(2), atol=1e-6)
    assert mi[1] == 0.0  # exact: the KL form does not cancel


def test_two_member_variance_by_hand():
    # Members (0.2, 0.8) and (0.6, 0.4): each class has variance 0.04.
    p = np.array([[[0.2, 0.8]], [[0.6, 0.4]]])
    np.testing.assert_allclose(entropy.member_variance(p), [0.04], rtol=1e-6)
    np.testing.assert_allclose(entropy.member_variance(p, ddof=1), [0.08], rtol=1e-6)
    est = entropy.variance_estimate(p)
    np.testing.assert_allclose(est.probs, [[0.4, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(est.aleatoric, _np_entropy(np.array([0.4, 0.6])))


class _Bias(nn.Module):
    """logits = b for every row: a member with hand-set probabilities."""

    @nn.compact
    def __call__(self, x):
        b = self.param("b", nn.initializers.zeros, (2,))
        return jnp.broadcast_to(b, (x.shape[0], 2)), {}


def test_two_member_ensemble_variance_by_hand():
    b = jnp.log(jnp.array([[0.2, 0.8], [0.6, 0.4]]))
    est = ensembles.ensemble_uncertainty(
        _Bias(), {"params": {"b": b}}, jnp.ones((3, 1))
    )
    np.testing.assert_allclose(est.epistemic, [0.04] * 3, rtol=1e-5)


# --- bootstrap logistic regression -------------------------------------------


def _sklearn_fit(x, y, counts):
    idx = np.repeat(np.arange(len(y)), counts.astype(int))
    m = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)
    return m.fit(x[idx].astype(np.float64), y[idx])


@pytest.mark.parametrize("k", [2, 3])
def test_bootstrap_logreg_equals_sklearn_per_resample(k):
    x, y = _data(n=60, k=k)
    key = jax.random.key(3)
    params = bootstrap.fit_bootstrap_logreg(x, y, k, key, num_resamples=3)
    counts = np.asarray(bootstrap.resample_weights(key, len(y), 3))
    assert np.all(counts.sum(1) == len(y))
    probs = np.asarray(bootstrap.logreg_probs(params, x))
    for b in range(3):
        ref = _sklearn_fit(x, y, counts[b])
        w = np.asarray(params.w[b])
        ours = (w[1] - w[0])[None] if k == 2 else w
        np.testing.assert_allclose(ours, ref.coef_, atol=1e-4)
        np.testing.assert_allclose(probs[b], ref.predict_proba(x), atol=1e-5)
    want = probs.var(0).mean(-1)
    got = bootstrap.bootstrap_logreg_uncertainty(params, x)
    np.testing.assert_allclose(got.epistemic, want, atol=1e-7)


def test_bootstrap_missing_class_gets_zero_probability():
    # Class 2 appears only in row 0; a resample without row 0 is a binary fit,
    # which scikit-learn solves with the single-logit loss.
    x, y = _data(n=60, k=2)
    y = y.copy()
    y[0] = 2
    counts = np.ones(60, np.float32)
    counts[0], counts[1] = 0.0, 2.0
    p = bootstrap.fit_logreg(x, y, counts, 3, tol=1e-7)
    assert np.asarray(p.present).tolist() == [True, True, False]
    probs = np.asarray(bootstrap.logreg_probs(p, x))
    assert np.all(probs[:, 2] == 0.0)
    ref = _sklearn_fit(x, y, counts)
    np.testing.assert_allclose((p.w[1] - p.w[0])[None], ref.coef_, atol=1e-4)
    np.testing.assert_allclose(probs[:, :2], ref.predict_proba(x), atol=1e-5)


def test_bootstrap_vmapped_equals_looped():
    x, y = _data(n=40)
    key = jax.random.key(5)
    params = bootstrap.fit_bootstrap_logreg(x, y, 3, key, num_resamples=2)
    counts = bootstrap.resample_weights(key, 40, 2)
    fit = jax.jit(bootstrap.fit_logreg, static_argnums=3)
    for b in range(2):
        one = fit(x, y, counts[b], 3)
        np.testing.assert_allclose(params.w[b], one.w, atol=1e-5)


# --- random forest ------------------------------------------------------------


@pytest.fixture(scope="module")
def rf():
    x, y = _data(n=120)
    return forest.fit_forest(x, y), x


def test_forest_tree_variance_equals_numpy_loop(rf):
    model, x = rf
    assert model.get_params()["max_depth"] == 15 and len(model.estimators_) == 100
    per_tree = np.stack([t.predict_proba(x) for t in model.estimators_])
    want = np.array([per_tree[:, i].var(0).mean() for i in range(len(x))])
    est = forest.forest_uncertainty(model, x)
    np.testing.assert_allclose(est.epistemic, want, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(est.probs, model.predict_proba(x), atol=1e-6)
    wide = forest.tree_probs(model, x, num_classes=5)
    assert wide.shape == (100, 120, 5) and np.all(wide[..., 3:] == 0)


def test_surrogate_fits_the_model_predictions():
    x, y = _data(n=80)
    w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    predict = lambda v: np.asarray(v) @ w
    sur = forest.fit_surrogate(predict, x, n_estimators=10)
    ref = forest.fit_forest(x, np.argmax(x @ w, 1), n_estimators=10)
    np.testing.assert_array_equal(sur.predict(x), ref.predict(x))
    est = forest.surrogate_uncertainty(sur, x, num_classes=3)
    assert est.epistemic.shape == (80,) and np.all(np.asarray(est.epistemic) >= 0)


# --- MC dropout and deep ensembles --------------------------------------------


@pytest.fixture(scope="module")
def mlp():
    x, y = _data(n=96)
    model = dropout.MLP(3, features=(16, 8))
    state = ensembles.train_mlp(
        model, x[:64], y[:64], jax.random.key(0), x_val=x[64:], y_val=y[64:],
        epochs=4, batch_size=32, patience=2,
    )  # fmt: skip
    return model, state.variables(), x


def test_mc_dropout_p0_gives_zero(mlp):
    model, variables, x = mlp
    est = dropout.mc_dropout_uncertainty(
        model.clone(dropout_rate=0.0), variables, x, jax.random.key(1), num_passes=4
    )
    assert np.all(np.asarray(est.epistemic) == 0.0)
    p = dropout.mc_dropout_uncertainty(
        model, variables, x, jax.random.key(1), num_passes=4
    )
    assert np.asarray(p.epistemic).max() > 0


def test_mc_dropout_vmapped_equals_looped(mlp):
    model, variables, x = mlp
    key = jax.random.key(2)
    probs = jax.jit(dropout.mc_dropout_probs, static_argnums=(0, 4))(
        model, variables, x, key, 4
    )
    for t, k in enumerate(jax.random.split(key, 4)):
        logits, _ = model.apply(variables, x, mc_dropout=True, rngs={"dropout": k})
        np.testing.assert_allclose(probs[t], jax.nn.softmax(logits), atol=1e-6)
    est = dropout.mc_dropout_uncertainty(model, variables, x, key, num_passes=4)
    np.testing.assert_allclose(est.epistemic, _np_mi(probs), atol=2e-6)


def test_mc_dropout_row_chunks_keep_every_rows_masks(mlp):
    # 96 rows in steps of 40 (the last one padded): the same masks, so the
    # same probabilities, as all rows at once. Dropping `row_offset` from the
    # steps (each step redrawing rows 0..39's masks) fails it.
    model, variables, x = mlp
    key = jax.random.key(5)
    run = jax.jit(dropout.mc_dropout_probs, static_argnums=(0, 4, 5))
    whole = run(model, variables, x, key, 4, None)
    chunked = run(model, variables, x, key, 4, 40)
    assert chunked.shape == whole.shape == (4, 96, 3)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    cnn = dropout.DropoutCNN(3, channels=(4, 8), pools=(True, False))
    imgs = np.random.default_rng(1).normal(size=(7, 4, 4, 1)).astype(np.float32)
    cv = jax.jit(cnn.init)(jax.random.key(0), imgs)
    np.testing.assert_allclose(
        run(cnn, cv, imgs, key, 5, 3), run(cnn, cv, imgs, key, 5, None), atol=1e-6
    )
    with pytest.raises(ValueError, match="row_chunk"):
        dropout.mc_dropout_uncertainty(model, variables, x, key, row_chunk=0)


def test_mc_dropout_train_batchnorm_flag_is_stateful(mlp):
    model, variables, x = mlp
    key = jax.random.key(4)
    est, new = dropout.mc_dropout_uncertainty(
        model, variables, x, key, num_passes=3, batchnorm_train=True
    )
    old = variables["batch_stats"]["bn1"]["mean"]
    assert not np.allclose(new["batch_stats"]["bn1"]["mean"], old)
    frozen = dropout.mc_dropout_uncertainty(model, variables, x, key, num_passes=3)
    assert not np.allclose(est.epistemic, frozen.epistemic)


def test_cnn_mc_variance_matches_numpy():
    imgs = np.random.default_rng(0).normal(size=(5, 4, 4, 1)).astype(np.float32)
    cnn = dropout.DropoutCNN(3, channels=(4, 8), pools=(True, False))
    variables = jax.jit(cnn.init)(jax.random.key(0), imgs)
    key = jax.random.key(1)
    est = dropout.cnn_mc_variance(cnn, variables, imgs, key, num_passes=6)
    probs = jax.jit(dropout.mc_dropout_probs, static_argnums=(0, 4))(
        cnn, variables, imgs, key, 6
    )
    probs = np.asarray(probs, np.float64)
    np.testing.assert_allclose(est.epistemic, probs.var(0).mean(-1), atol=1e-8)
    assert np.asarray(est.epistemic).min() > 0
    zero = dropout.cnn_mc_variance(
        cnn.clone(dropout_rate=0.0), variables, imgs, key, num_passes=6
    )
    assert np.all(np.asarray(zero.epistemic) == 0.0)


def test_deep_ensemble_vmapped_equals_looped():
    x, y = _data(n=64)
    model = dropout.MLP(3, features=(8,))
    model, states = ensembles.train_ensemble(
        x, y, 3, jax.random.key(7), num_members=2, model=model, epochs=2, batch_size=32
    )
    variables = states.variables()
    est = ensembles.ensemble_uncertainty(model, variables, x)
    members = [jax.tree.map(lambda a, m=m: a[m], variables) for m in range(2)]
    probs = np.stack([jax.nn.softmax(model.apply(v, x)[0]) for v in members])
    assert not np.allclose(probs[0], probs[1])  # independent initialisations
    np.testing.assert_allclose(est.epistemic, probs.var(0).mean(-1), atol=1e-7)


# --- non-finite inputs ----------------------------------------------------------


def test_nan_input_names_the_argument(rf, mlp):
    x, y = _data(n=20)
    bad = x.copy()
    bad[0, 0] = np.nan
    key = jax.random.key(0)
    model, variables, _ = mlp
    calls = [
        lambda: bootstrap.fit_bootstrap_logreg(bad, y, 3, key, num_resamples=2),
        lambda: forest.fit_forest(bad, y),
        lambda: forest.forest_uncertainty(rf[0], bad),
        lambda: dropout.mc_dropout_uncertainty(model, variables, bad, key),
        lambda: ensembles.train_mlp(model, bad, y, key, epochs=1),
        lambda: ensembles.ensemble_uncertainty(model, variables, bad),
    ]
    for call in calls:
        with pytest.raises(NonFiniteError, match=r"^x has 1 non-finite"):
            call()
    with pytest.raises(NonFiniteError, match=r"^images has"):
        dropout.cnn_mc_variance(None, {}, bad[:, :, None, None], key)
