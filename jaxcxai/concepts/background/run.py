"""Running a background-bias study: multi-view fits, test IoUs, shift.

`background(study, workdir, net)` follows Schwalbe et al. 2025 (arXiv
2504.08602) on SynthAerial objects (`study.build_objects`):

* training: per concept and training randomisation ("vanilla": the
  objects in their own scenes, target = every object of the class; "full" /
  "voronoi": `views.train` views of each object pasted on backgrounds of
  the training pool, target = the object's mask), the backbone's
  activations at each layer and, per method, the GloCE of the multi-view
  LoCEs (`multiview.fit_gloces`) or the multi-view Net2Vec vector
  (`multiview.fit_net2vec`);
* test: the held-out objects pasted ("full") on backgrounds of each scene
  group of a disjoint test pool, plus "vanilla" (their own scenes), and the
  IoU of every vector on every view on the 80 x 80 grid (`bias.view_ious`),
  mean / sample std per group (`bias.group_stats`);
* background pools (`pool.source`) filtered per concept (`pool.filter`,
  `_filtered_pool`): the classifier's logits are computed once per pool,
  and where the pool knows which backgrounds show the concept, the filter is
  scored against that truth;
* embedding shift: `bias.cosine_matrix` of the vectors of one (concept,
  layer, method) across the training randomisations.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import numpy as np

from jaxcxai.concepts.background import (
    bias,
    figures,
    filtering,
    multiview,
    paste,
    pools,
    report,
)
from jaxcxai.concepts.background import study as study_lib
from jaxcxai.concepts.background.study import VANILLA, BackgroundStudy
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.models import pretrained
from jaxcxai.models.preprocess import preprocess, resize
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["background", "fit_vectors", "test_ious"]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[background] {text}", flush=True)


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


def _candidates(st: BackgroundStudy, size: int, seed: int, n: int):
    """The candidate pool: `n` (x `pool.candidates` when filtering) per group."""
    p = st.pool
    n = n * (p.candidates if p.filter != "none" else 1)
    kw = dict(size=size, seed=seed, groups=study_lib.groups(st))
    if p.source == "scenes":
        return pools.synthaerial_scene_pool(n, scene_fraction=p.scene_fraction, **kw)
    return pools.synthaerial_pool(n, **kw)


@functools.lru_cache(maxsize=1)
def _imagenet_classifier():
    """Jitted packaged MobileNetV2: (B, S, S, 3) uint8 -> (B, 1000) logits."""
    model, variables = pretrained.load_pretrained("mobilenet_v2")
    fn = jax.jit(lambda x: model.apply(variables, preprocess("mobilenet_v2", x),
                                       train=False)[0])  # fmt: skip
    return lambda images: fn(resize(np.asarray(images), 224))


def _classifier(st: BackgroundStudy, net: TrainedBackbone):
    """The filter's classifier, images -> (B, K) logits (None: no filter)."""
    if st.pool.filter == "none":
        return None
    if st.pool.filter == "presence":
        return jax.jit(lambda x: net.apply(x)[0])
    return _imagenet_classifier()


def _pool_logits(st: BackgroundStudy, net: TrainedBackbone, pool, classify=None):
    """(P, K) logits of the filter's classifier over a pool (None: no filter);
    pass `classify` (from `_classifier`) to reuse one compiled classifier."""
    if st.pool.filter == "none":
        return None
    classify = classify or _classifier(st, net)
    return filtering.classify_backgrounds(
        pool.images, classify, batch_size=st.batch_size
    )


def _filtered_pool(st, net, pool, logits, concept: str, n: int, what: str):
    """The first `n` backgrounds per group the filter keeps for `concept`
    (completed per `pool.when_short`), and the filter's counts ({} without
    a filter, or without the pool's truth and nothing filled)."""
    p, stats = st.pool, {}
    if logits is None:
        return filtering.keep_per_group(pool, np.ones(len(pool.images), bool), n)[0], {}
    if p.filter == "presence":
        name = f"has_{concept}"
        if name not in net.outputs:
            raise ValueError(f"pool.filter 'presence' needs the backbone output "
                             f"{name!r}; it has {list(net.outputs)}")  # fmt: skip
        cols = [net.outputs.index(name)]
        keep = ~np.asarray(filtering.reject_presence(logits, cols, p.filter_threshold))
        scores = filtering.presence_scores(logits, cols)
    else:
        bad = filtering.forbidden_classes(filtering.IMAGENET_CONCEPTS, concept, 1000)
        keep = ~np.asarray(filtering.reject_top_k(logits, bad, p.filter_top_k))
        scores = filtering.top_k_scores(logits, bad)
    used, filled = filtering.keep_per_group(
        pool, keep, n, what=f"{what} of {concept}",
        scores=scores if p.when_short == "least_likely" else None,
    )  # fmt: skip
    stats = {"filled": filled}
    if pool.objects is not None:
        k = synthaerial.CONCEPTS.index(concept)
        stats |= filtering.score_filter(~keep, pool.objects[:, k])
        stats["used"] = len(used.images)
        stats["used_showing"] = int(used.objects[:, k].sum())
    return used, stats


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


def _rows(concept, tests, order, layers) -> list[dict]:
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


def _shift(st: BackgroundStudy, concept, vectors) -> tuple[list, dict]:
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


def background(st: BackgroundStudy, workdir: str, net: TrainedBackbone,
               progress=False) -> dict:  # fmt: skip
    """The whole study: objects, fits, test IoUs, shift, report, figures.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `background_results.json`)}.
    """
    study_lib.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    t0, size, p = time.perf_counter(), study_lib.image_size(st, net), st.pool
    objs = study_lib.build_objects(st, size)
    groups = study_lib.groups(st)
    train_cand = _candidates(st, size, p.seed, p.train_per_group)
    test_cand = _candidates(st, size, p.test_seed, p.test_per_group)
    classify = _classifier(st, net)  # compiled once for both pools
    logits = tuple(_pool_logits(st, net, c, classify) for c in (train_cand, test_cand))
    seconds = {"data": time.perf_counter() - t0, "fit": 0.0, "test": 0.0}
    _say(progress, f"{len(objs)} concepts x {st.data.num_train} + "
                   f"{st.data.num_test} objects, pools in {seconds['data']:.1f} s")  # fmt: skip
    order = [(m, k) for m in st.methods for k in st.train_kinds]
    key = jax.random.key(st.seed)
    rows, shift, mats, arrays, samples, filtered = [], [], {}, {}, None, {}
    for c, concept in enumerate(st.concepts):
        t0 = time.perf_counter()
        train_pool, f_train = _filtered_pool(st, net, train_cand, logits[0], concept,
                                             p.train_per_group, "training pool")  # fmt: skip
        test_pool, f_test = _filtered_pool(st, net, test_cand, logits[1], concept,
                                           p.test_per_group, "test pool")  # fmt: skip
        filtered[concept] = {"train": f_train, "test": f_test}
        k_fit, k_test = jax.random.split(jax.random.fold_in(key, c))
        vectors, views = fit_vectors(st, net, objs[concept], train_pool.images, k_fit)
        samples = samples or {"concept": concept, "views": views}
        seconds["fit"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        tests = test_ious(st, net, objs[concept], test_pool, order, vectors, k_test)
        seconds["test"] += time.perf_counter() - t0
        _say(progress, f"{concept}: fits and {len(tests)} test groups in "
                       f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        for (layer, method, kind), v in vectors.items():
            arrays[f"{concept}.{layer}.{method}.{kind}.vector"] = v
        for g, (images, masks, ious) in tests.items():
            arrays[f"{concept}.test.{g}.image"] = images
            arrays[f"{concept}.test.{g}.mask"] = masks
            for layer, iou in ious.items():
                arrays[f"{concept}.{layer}.{g}.iou"] = iou
        rows += _rows(concept, tests, order, st.layers)
        s, m = _shift(st, concept, vectors)
        shift += s
        mats |= m
    t0 = time.perf_counter()
    study_lib.save_npz(os.path.join(workdir, study_lib.ARRAYS), arrays)
    n = st.data.num_train
    results = {
        "concepts": list(st.concepts), "layers": list(st.layers),
        "methods": list(st.methods), "train_kinds": list(st.train_kinds),
        "test_groups": [VANILLA, *groups], "vector_order": [list(o) for o in order],
        "image_size": size, "num_train": n, "num_test": st.data.num_test,
        "views": dataclasses.asdict(st.views), "pool": dataclasses.asdict(st.pool),
        "fit": dataclasses.asdict(st.fit), "data_seed": st.data.seed,
        "paper_groups": {g: pools.PAPER_GROUPS[g] for g in groups},
        "objects_on": {c: {b: int(np.sum(o["on"][:n] == b)) for b in np.unique(o["on"][:n])}
                       for c, o in objs.items()},
        "net2vec_steps": -(-n * st.views.train * st.fit.epochs // st.fit.batch),
        "iou": rows, "shift": shift, "shift_matrix": mats, "filtering": filtered,
        "backend": jax.default_backend(), "devices": jax.device_count(),
    }  # fmt: skip
    results["bias_check"] = report.bias_check(results)
    figs = figures.figures(results, samples, workdir)
    results["seconds"] = dict(seconds, figures=time.perf_counter() - t0)
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study_lib.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study_lib.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
