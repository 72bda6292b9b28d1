"""The tabular model shared by the `kernel_shap` and `lime_tabular` benchmarks.

Data: scikit-learn's bundled wine set (178 x 13, three classes), its first
12 features, standardised. Model: scikit-learn `MLPClassifier(hidden=(32,),
relu, adam, random_state=0)` fitted on a 2/3 training split; the same
weights run as a jax function (float32) and as a NumPy function (float64),
both returning class probabilities. Explained rows: the data cycled to N
rows (178 distinct; every explanation gets its own key, so repeats are
separate draws).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

D = 12


class TabularModel(NamedTuple):
    x_train: np.ndarray
    x_all: np.ndarray
    jax_fn: object
    numpy_fn: object
    accuracy: float


def load(hidden: tuple[int, ...] = (32,)) -> TabularModel:
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True)
    x = StandardScaler().fit_transform(x[:, :D])
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=1 / 3, random_state=0, stratify=y
    )
    clf = MLPClassifier(hidden, max_iter=3000, random_state=0).fit(xtr, ytr)
    ws = [np.asarray(w, np.float64) for w in clf.coefs_]
    bs = [np.asarray(b, np.float64) for b in clf.intercepts_]
    wj = [jnp.asarray(w, jnp.float32) for w in ws]
    bj = [jnp.asarray(b, jnp.float32) for b in bs]

    def numpy_fn(z):
        h = np.asarray(z, np.float64)
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def jax_fn(z):
        h = z
        for i, (w, b) in enumerate(zip(wj, bj)):
            h = h @ w + b[None, :]
            if i < len(wj) - 1:
                h = jax.nn.relu(h)
        return jax.nn.softmax(h, axis=-1)

    acc = float((numpy_fn(xte).argmax(1) == yte).mean())
    return TabularModel(xtr, x, jax_fn, numpy_fn, acc)


def rows(x: np.ndarray, n: int) -> np.ndarray:
    """n rows cycling through x."""
    return np.resize(x, (n, x.shape[1]))
