"""The `stability_bulk` baseline: one scikit-learn classifier per CAV.

For every (concept, layer, view) cell, R linear classifiers are fitted on
the same concept / non-concept subsets as ours, on views computed in NumPy,
and their consistency (mean pairwise cosine of the unit weight vectors) and
separation (mean held-out accuracy of the R classifiers) are computed in
NumPy. `sgd` is TCAV's default classifier (the agreement baseline);
`linear_svc` is the converged hinge SVM (`extra.exact_hinge_reference`).
"""

import numpy as np


def np_view(x, dim):
    """The 1D (spatial mean), 2D (channel mean) or 3D (flattened) view of
    (..., H, W, C) maps, the views of `representations.represent` in NumPy."""
    if dim == "1d":
        return x.mean(axis=(-3, -2))
    if dim == "2d":
        return x.mean(axis=-1).reshape(x.shape[:-3] + (-1,))
    return x.reshape(x.shape[:-3] + (-1,))


def sgd(alpha, run):
    """TCAV's `cav.py` default: `SGDClassifier` (hinge), seeded by the run."""
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(alpha=alpha, max_iter=1000, tol=1e-3, random_state=run)


def linear_svc(alpha, samples, run):
    """liblinear's hinge SVM with C = 1 / (n alpha), n = 2 `samples` (the
    objective of `sgd` with a mean loss), and a weakly regularized
    intercept; seeded by `run` (liblinear's dual coordinate descent visits
    samples in a random order, and an unseeded fit that stops at max_iter
    varied in the fourth decimal from run to run)."""
    from sklearn.svm import LinearSVC

    return LinearSVC(loss="hinge", C=1.0 / (2 * samples * alpha), dual=True,
                     intercept_scaling=100.0, tol=1e-6, max_iter=100_000,
                     random_state=run)  # fmt: skip


def baseline(layers, subsets, dims, make, samples):
    """{layer: {dim: ((K,) consistency, (K,) separation)}}: one sklearn
    classifier `make(run)` per CAV, fitted on `samples` concept + `samples`
    non-concept rows of the pools, views and metrics in NumPy."""
    y = np.r_[np.ones(samples), np.zeros(samples)]
    out = {}
    for name, data in layers.items():
        out[name] = {}
        for dim in dims:
            pos, neg = np_view(data["pos"], dim), np_view(data["neg"], dim)
            held_pos = np_view(data["held_pos"], dim)
            held_neg = np_view(data["held_neg"], dim)
            con, sep = [], []
            for i, (pi, ni) in enumerate(subsets):
                w, b = [], []
                for run in range(pi.shape[0]):
                    x = np.concatenate([pos[i][pi[run]], neg[ni[run]]])
                    clf = make(run).fit(x, y)
                    w.append(clf.coef_[0])
                    b.append(clf.intercept_[0])
                w, b = np.asarray(w), np.asarray(b)
                v = w / np.linalg.norm(w, axis=1, keepdims=True)
                cos = v @ v.T
                r = len(v)
                con.append(np.triu(cos, 1).sum() / (r * (r - 1) / 2))
                zp, zn = held_pos[i] @ w.T + b, held_neg @ w.T + b  # (M, R)
                acc = ((zp > 0).sum(0) + (zn <= 0).sum(0)) / (len(zp) + len(zn))
                sep.append(acc.mean())
            out[name][dim] = (np.asarray(con), np.asarray(sep))
    return out
