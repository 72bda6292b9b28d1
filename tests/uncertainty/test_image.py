"""The image experiment (E8) against independent references: the digit set
itself, scikit-image SSIM in float64, scipy's Spearman, a NumPy groupby, and
Integrated Gradients / SmoothGrad rebuilt from `jax.grad` by hand."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from sklearn.datasets import load_digits

from jaxcxai.data.classic import write_idx
from jaxcxai.uncertainty import image
from jaxcxai.uncertainty.dropout import cnn_mc_variance

SIGMAS = (0.0, 0.1, 0.3)
N_IMAGES, PASSES, IG_STEPS, SMOOTH_N = 20, 5, 8, 4
CNN = {"channels": (16, 32, 64), "pools": (True, True, False)}


@pytest.fixture(scope="module")
def splits():
    return image.load_images("digits")


@pytest.fixture(scope="module")
def trained(splits):
    return image.train_cnn(splits, jax.random.key(0), epochs=3, batch_size=32, **CNN)


@pytest.fixture(scope="module")
def run(splits, trained):
    model, variables, _ = trained
    x, y = splits.x_test[:N_IMAGES], splits.y_test[:N_IMAGES]
    key = jax.random.key(7)
    out = image.image_experiment(
        model, variables, x, y, key, sigmas=SIGMAS, num_passes=PASSES,
        ig_steps=IG_STEPS, smooth_n=SMOOTH_N,
    )  # fmt: skip
    return out, x, y, key


def _skimage_ssim(a, b):
    norm = lambda m: (m - m.min()) / (m.max() - m.min())
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return structural_similarity(norm(a), norm(b), data_range=1.0)


def _noisy(x, key, level):
    k_noise = jax.random.split(key, 3)[0]
    eps = jax.random.normal(jax.random.fold_in(k_noise, level), x.shape)
    return np.clip(np.asarray(x) + SIGMAS[level] * np.asarray(eps), -1.0, 1.0)


def _logit_grad(model, variables):
    logit = lambda z, t: model.apply(variables, z[None])[0][0, t]
    return jax.jit(jax.grad(logit))


# --- data ---------------------------------------------------------------------


def test_load_images_digits_split_per_class(splits):
    d = load_digits()
    assert splits.x_train.shape[1:] == (8, 8, 1) and splits.x_train.dtype == np.float32
    assert splits.y_test.dtype == np.int32 and splits.class_names[3] == "3"
    for c in range(10):
        n_c = int(np.sum(d.target == c))
        counts = [int(np.sum(y == c)) for y in (splits.y_train, splits.y_val)]
        assert counts == [int(0.7 * n_c), int(0.15 * n_c)]
        assert np.sum(splits.y_test == c) == n_c - sum(counts)
    # The splits hold exactly the digits, scaled 0..16 -> [-1, 1].
    x = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert x.min() == -1.0 and x.max() == 1.0
    ours = sorted(r.tobytes() + bytes([t]) for r, t in zip(x.reshape(len(x), -1), y))
    ref = (d.images.reshape(len(d.images), -1) / 8.0 - 1.0).astype(np.float32)
    assert ours == sorted(r.tobytes() + bytes([t]) for r, t in zip(ref, d.target))
    again = image.load_images("digits")
    np.testing.assert_array_equal(again.x_test, splits.x_test)


def test_load_images_fashion_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as err:
        image.load_images("fashion_mnist", root=str(tmp_path))
    assert str(tmp_path) in str(err.value)
    rng = np.random.default_rng(0)
    for pre, n in (("train", 60), ("t10k", 40)):
        labels = np.arange(n, dtype=np.uint8) % 10
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        write_idx(os.path.join(tmp_path, f"{pre}-images-idx3-ubyte.gz"), pixels)
        write_idx(os.path.join(tmp_path, f"{pre}-labels-idx1-ubyte.gz"), labels)
    s = image.load_images("fashion_mnist", root=str(tmp_path), max_per_class=8)
    assert s.x_train.shape == (50, 28, 28, 1)  # 10 per class pooled, 8 kept
    assert (len(s.y_val), len(s.y_test)) == (10, 20)
    assert s.x_test.min() >= -1.0 and s.x_test.max() <= 1.0
    assert s.class_names[0] == "T-shirt/top"


# --- training -----------------------------------------------------------------


def test_train_cnn_learns_and_keeps_best(splits, trained):
    model, variables, hist = trained
    assert hist["epochs_run"] == len(hist["val_accuracy"]) == 3
    assert hist["test_accuracy"] > 0.5  # chance: 0.1
    logits, _ = model.apply(variables, splits.x_val)
    acc = np.mean(np.argmax(np.asarray(logits), -1) == splits.y_val)
    assert acc == pytest.approx(max(hist["val_accuracy"]))
    assert hist["val_accuracy"][hist["best_epoch"] - 1] == max(hist["val_accuracy"])


def test_train_cnn_early_stopping(splits):
    # No epoch can gain a full 100 points: the run stops after 1 + patience.
    small = dataclasses.replace(splits, x_train=splits.x_train[:100],
                                y_train=splits.y_train[:100])  # fmt: skip
    _, _, hist = image.train_cnn(
        small, jax.random.key(1), epochs=10, batch_size=64, patience=2,
        min_delta=1.0, **CNN,
    )  # fmt: skip
    assert hist["epochs_run"] == 3 and hist["best_epoch"] >= 1
    assert np.all(np.isfinite(hist["train_loss"]))


# --- the experiment -----------------------------------------------------------


def test_u_matches_mc_dropout_on_clean_and_noisy(run, trained):
    out, x, _, key = run
    model, variables, _ = trained
    k_u = jax.random.split(key, 3)[1]
    u = lambda z: cnn_mc_variance(model, variables, z, k_u, num_passes=PASSES)
    ref = u(jnp.asarray(x)).epistemic
    np.testing.assert_allclose(out["u"][0], ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out["u_clean"], ref, rtol=1e-6, atol=1e-9)
    ref2 = u(jnp.asarray(_noisy(x, key, 2), jnp.float32)).epistemic
    np.testing.assert_allclose(out["u"][2], ref2, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(out["u_mean"], np.mean(out["u"], 1), rtol=1e-6)


def test_ig_ssim_against_hand_ig_and_skimage(run, trained):
    out, x, y, key = run
    assert out["ssim"]["ig"].shape == (len(SIGMAS), N_IMAGES)
    np.testing.assert_allclose(out["ssim"]["ig"][0], 1.0, atol=1e-4)
    grad = _logit_grad(*trained[:2])
    nodes, weights = np.polynomial.legendre.leggauss(IG_STEPS)

    def ig_gray(xi, t):  # zero baseline, Gauss-Legendre on [0, 1]
        g = sum(w / 2 * np.asarray(grad(jnp.asarray((a + 1) / 2 * xi), t))
                for a, w in zip(nodes, weights))  # fmt: skip
        return (xi * g).mean(-1)

    for level in (1, 2):
        noisy = _noisy(x, key, level)
        for i in (0, 5, 13):
            ref = _skimage_ssim(ig_gray(x[i], y[i]), ig_gray(noisy[i], y[i]))
            assert out["ssim"]["ig"][level, i] == pytest.approx(ref, abs=1e-4)


def test_smoothgrad_ssim_against_hand_smoothgrad(run, trained):
    out, x, y, key = run
    grad = _logit_grad(*trained[:2])
    # Stacked rows: clean images, then level 0, 1, 2; row r's copy j draws
    # from fold_in(split(k_sg, rows)[r], j) (jaxcxai.attribution.noise).
    row_keys = jax.random.split(jax.random.split(key, 3)[2], 4 * N_IMAGES)

    def sg_gray(xi, t, r):
        draw = lambda j: jax.random.normal(jax.random.fold_in(row_keys[r], j), xi.shape)
        g = [grad(jnp.clip(xi + 0.1 * draw(j), -1, 1), t) for j in range(SMOOTH_N)]
        return np.mean(np.asarray(g), 0).mean(-1)

    for level in (0, 2):
        noisy = _noisy(x, key, level)
        for i in (1, 8):
            clean = sg_gray(x[i], y[i], i)
            pert = sg_gray(noisy[i], y[i], (1 + level) * N_IMAGES + i)
            ref = _skimage_ssim(clean, pert)
            assert out["ssim"]["smoothgrad"][level, i] == pytest.approx(ref, abs=1e-4)
    # Fresh SmoothGrad noise per map: even sigma 0 stays below 1.
    assert np.mean(out["ssim"]["smoothgrad"][0]) < 1.0 - 1e-3


def test_xec_is_scipy_spearman_of_the_means(run):
    out = run[0]
    for m in ("ig", "smoothgrad"):
        np.testing.assert_allclose(out["ssim_mean"][m], np.mean(out["ssim"][m], 1))
        ref = spearmanr(out["ssim_mean"][m], out["u_mean"]).statistic
        assert out["xec"][m] == pytest.approx(ref, abs=1e-6)


def test_strata_and_groupby_means(run):
    out = run[0]
    u = np.asarray(out["u_clean"], np.float64)
    t = np.quantile(u, [1 / 3, 2 / 3])
    np.testing.assert_allclose(out["u_thresholds"], t, rtol=1e-5)
    labels = (u > t[0]).astype(int) + (u > t[1])  # right-closed bins (qcut)
    np.testing.assert_array_equal(out["stratum"], labels)
    assert sorted(np.bincount(labels)) == [6, 7, 7]
    for m in ("ig", "smoothgrad"):
        vals = np.asarray(out["ssim"][m])
        ref = np.stack([vals[:, labels == k].mean(1) for k in range(3)], 1)
        np.testing.assert_allclose(out["ssim_by_stratum"][m], ref, rtol=1e-5)


def test_image_experiment_rejects_small_maps(trained):
    model, variables, _ = trained
    with pytest.raises(ValueError, match="H>=7"):
        image.image_experiment(
            model, variables, np.zeros((2, 6, 6, 1)), np.zeros(2), jax.random.key(0)
        )
