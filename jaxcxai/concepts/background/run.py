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

The per-concept fits, test IoUs and their summaries live in `vectors`
(`fit_vectors` and `test_ious` are re-exported here).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import numpy as np

from jaxcxai.concepts.background import figures, filtering, pools, report
from jaxcxai.concepts.background import study as study_lib
from jaxcxai.concepts.background import vectors as vectors_lib
from jaxcxai.concepts.background.study import VANILLA, BackgroundStudy
from jaxcxai.concepts.background.vectors import fit_vectors as fit_vectors
from jaxcxai.concepts.background.vectors import test_ious as test_ious
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.models import pretrained
from jaxcxai.models.preprocess import preprocess, resize
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["background", "fit_vectors", "test_ious"]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[background] {text}", flush=True)


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
        rows += vectors_lib.iou_rows(concept, tests, order, st.layers)
        s, m = vectors_lib.shift_rows(st, concept, vectors)
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
