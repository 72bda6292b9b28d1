"""One concept's vectors in a background-bias study, and what is measured on them.

`fit_vectors` fits, per training randomisation, layer and method, a concept
vector on the multi-view activations of the training objects; `test_ious`
measures every vector's IoU on the held-out objects pasted on each test
group; `iou_rows` summarises those IoUs per group and `shift_rows` gives the
embedding shift across the training randomisations (`run.background` calls
them per concept).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxcxai.concepts.background import bias, multiview, paste
from jaxcxai.concepts.background import study as study_lib
from jaxcxai.concepts.background.study import VANILLA, BackgroundStudy
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["fit_vectors", "iou_rows", "shift_rows", "test_ious"]


def _views(st: BackgroundStudy, images, masks, pool, key, kind, n_views):
    """(N, V, S, S, 3) views and (N, V, S, S) targets of one randomisation."""
    views = np.asarray(paste.make_views(images, masks, pool, key, kind, n_views,
                                        resize=st.views.resize))  # fmt: skip
    return views, np.broadcast_to(masks[:, None], views.shape[:-1])


def _fit(st: BackgroundStudy, acts, targets, method: str, key) -> np.ndarray:
    """(C,) concept vector of one method from (N, V, C, h, w) activations."""
    f = st.fit
    if method.startswith("loce"):
        cfg = multiview.method_config(method, steps=f.steps)
        _, means, _ = multiview.fit_gloces(acts, targets, np.zeros(len(acts), np.int32),
                                           config=cfg)  # fmt: skip
        return np.asarray(means[0], np.float32)
    return np.asarray(multiview.fit_net2vec(
        acts, targets, config=multiview.method_config(method), batch_size=f.batch,
        epochs=f.epochs, key=key), np.float32)  # fmt: skip


def fit_vectors(st: BackgroundStudy, net: TrainedBackbone, obj: dict, pool, key):
    """{(layer, method, kind): (C,)} vectors of one concept, and the first
    object's training views {kind: (V, S, S, 3)} (the sample figure)."""
    n = st.data.num_train
    img, mask, whole = obj["image"][:n], obj["mask"][:n], obj["class_mask"][:n]
    out, samples = {}, {}
    for i, kind in enumerate(st.train_kinds):
        k = jax.random.fold_in(key, i)
        if kind == VANILLA:
            views, masks = img[:, None], whole[:, None]
        else:
            views, masks = _views(st, img, mask, pool, k, kind, st.views.train)
        samples[kind] = views[0]
        acts = study_lib.extract(net, views.reshape((-1,) + views.shape[2:]), st)
        targets = multiview.grid_targets(masks)
        for layer in st.layers:
            a = acts[layer].reshape(views.shape[:2] + acts[layer].shape[1:])
            for j, method in enumerate(st.methods):
                out[layer, method, kind] = _fit(st, a, targets, method,
                                                jax.random.fold_in(k, 1000 + j))  # fmt: skip
    return out, samples


def test_ious(st: BackgroundStudy, net, obj: dict, test_pool, order, vectors, key):
    """{group: (images, masks, {layer: (M, K) IoUs})} of the held-out objects
    per test group; K follows `order` [(method, kind)]."""
    n = st.data.num_train
    img, mask, whole = obj["image"][n:], obj["mask"][n:], obj["class_mask"][n:]
    out = {}
    for g, group in enumerate((VANILLA,) + tuple(test_pool.group_names)):
        if group == VANILLA:
            views, masks = img, whole
        else:
            v, m = _views(st, img, mask, test_pool.select(group).images,
                          jax.random.fold_in(key, g), "full", st.views.test)  # fmt: skip
            views, masks = (
                v.reshape((-1,) + v.shape[2:]),
                m.reshape((-1,) + m.shape[2:]),
            )
        acts = study_lib.extract(net, views, st)
        ious = {}
        for layer in st.layers:
            vec = np.stack([vectors[layer, m, k] for m, k in order])
            ious[layer] = np.asarray(bias.view_ious(vec, acts[layer], masks))
        out[group] = (np.asarray(views), np.asarray(masks), ious)
    return out


def iou_rows(concept, tests, order, layers) -> list[dict]:
    """Mean / std / count per (layer, method, training kind, test group)."""
    names = list(tests)
    rows = []
    for layer in layers:
        vals = np.concatenate([tests[g][2][layer] for g in names])
        idx = np.concatenate([np.full(len(tests[g][2][layer]), i, np.int32)
                              for i, g in enumerate(names)])  # fmt: skip
        for k, (method, kind) in enumerate(order):
            s = bias.group_stats(vals[:, k], idx, len(names))
            for i, g in enumerate(names):
                std = float(s["std"][i])
                rows.append({"concept": concept, "layer": layer, "method": method,
                             "train": kind, "test": g, "mean": float(s["mean"][i]),
                             "std": std if np.isfinite(std) else None,
                             "count": int(s["count"][i])})  # fmt: skip
    return rows


def shift_rows(st: BackgroundStudy, concept, vectors) -> tuple[list, dict]:
    """cos(randomised, vanilla) rows and the full cosine matrix per
    (layer, method) across the training randomisations."""
    rows, mats = [], {}
    v0 = st.train_kinds.index(VANILLA)
    for layer in st.layers:
        for method in st.methods:
            a = np.stack([vectors[layer, method, k] for k in st.train_kinds])
            m = np.asarray(bias.cosine_matrix(a, a, atol=st.fit.cosine_atol))
            mats[f"{concept}.{layer}.{method}"] = m.tolist()
            rows += [{"concept": concept, "layer": layer, "method": method,
                      "train": k, "cosine": float(m[i, v0])}
                     for i, k in enumerate(st.train_kinds) if k != VANILLA]  # fmt: skip
    return rows, mats
