"""Fitting a probe study: data, cached activations, Net2Vec probes and CAVs.

`fit(study, workdir, net)` builds the training and held-out splits, caches
the layers' activations, fits K concepts x L layers x R runs of Net2Vec
probes in bulk and, per layer, K x R concept-vs-random CAVs plus R - 1
random-vs-random CAVs on whole images (TCAV's protocol, Kim et al. 2018).
`probes.json` is written last, so a workdir that has it is complete and a
re-run returns it without fitting again. `fingerprint.json` is written first
(`study.fingerprint_fields`: the backbone's weights and the settings); a
re-run with another backbone or other settings raises `FingerprintError`
naming the field instead of resuming, and the feature caches record the same
fingerprint. A re-run deletes temporary files a killed run left.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import numpy as np

from jaxcxai import checks, parallel
from jaxcxai.atomic_files import is_temporary
from jaxcxai.concepts.probes import bulk, cavs, net2vec, pipeline, sources, study
from jaxcxai.concepts.probes.state import Net2VecConfig
from jaxcxai.concepts.probes.study import ProbeStudy
from jaxcxai.metric_writers import write_json_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["fit", "fit_net2vec", "fit_tcav", "net2vec_config"]


def net2vec_config(s: study.Net2VecSettings) -> Net2VecConfig:
    """The bulk fit's `Net2VecConfig` of the study's Net2Vec settings."""
    return Net2VecConfig(
        objective=s.objective,
        pos_weight=s.pos_weight or None,
        optimizer=s.optimizer,
        learning_rate=s.lr,
        momentum=s.momentum,
        weight_decay=s.weight_decay,
        batch_size=s.batch_size,
        epochs=s.epochs,
        init=s.init,
    )


def fit_net2vec(st: ProbeStudy, cache, masks) -> dict[str, np.ndarray]:
    """{f"{layer}.w" (K, R, C), f"{layer}.b" (K, R), f"{layer}.thr" (C,)}."""
    layers = list(st.layers)
    q = st.net2vec.threshold_quantile
    thr = {
        name: net2vec.netdissect_thresholds(cache.iter_chunks(name), q)
        if q
        else np.full(cache.shape(name)[-1], -np.inf, np.float32)
        for name in layers
    }
    probes = bulk.fit_net2vec_layers(
        sources.cache_source(cache, masks, shuffle_seed=st.seed),
        layers,
        {name: cache.shape(name) for name in layers},
        jax.random.key(st.seed),
        thresholds=thr if q else None,
        config=net2vec_config(st.net2vec),
        num_runs=st.net2vec.runs,
        alpha=net2vec.foreground_alpha(masks),
        mesh=parallel.make_mesh(),
    )
    out = {}
    for name in layers:
        out[f"{name}.w"] = np.asarray(probes[name].w)
        out[f"{name}.b"] = np.asarray(probes[name].b)
        out[f"{name}.thr"] = thr[name]
    return out


def fit_tcav(st: ProbeStudy, cache, masks) -> dict[str, np.ndarray]:
    """Concept and random CAVs per layer on whole training images.

    Returns:
      {"concepts" (K',) kept concept columns, "concept_rows", "random_rows",
      and per layer f"{layer}.direction" (K', R, d), ".norm", ".bias" (K', R),
      ".random_direction" (R - 1, d)}; empty when fewer than 2 concepts'
      images or too few random sets exist.
    """
    t = st.tcav
    sets = pipeline.sample_sets(
        masks.reshape(masks.shape[:2] + (-1,)).any(-1),
        t.num_concept_images,
        t.num_random_images,
        t.num_random,
        st.seed,
    )
    if t.num_random < 3 or len(sets["concepts"]) == 0:
        logging.warning("TCAV skipped: need >= 3 random sets and a concept set")
        return {}
    out = dict(sets)
    for name in st.layers:
        acts = np.asarray(cache[name], np.float32)
        pos = cavs.flatten_acts(acts[sets["concept_rows"]], t.pool)
        neg = cavs.flatten_acts(acts[sets["random_rows"]], t.pool)
        fitted = cavs.fit_cavs(pos, neg, method=t.method, alpha=t.alpha)
        rand = cavs.fit_cavs(neg[:1], neg[1:], method=t.method, alpha=t.alpha)
        out[f"{name}.direction"] = np.asarray(fitted.direction)
        out[f"{name}.norm"] = np.linalg.norm(np.asarray(fitted.weight), axis=-1)
        out[f"{name}.bias"] = np.asarray(fitted.bias)
        out[f"{name}.random_direction"] = np.asarray(rand.direction[0])
    return out


def fit(st: ProbeStudy, workdir: str, net: TrainedBackbone, progress=True) -> dict:
    """Builds the data, caches activations, fits Net2Vec probes and CAVs.

    Args:
      st: the study's settings.
      workdir: output directory (see `study` for its files).
      net: the trained backbone (`jaxcxai.training.load_trained`).
      progress: progress bars.

    Returns:
      The run summary also written to `probes.json`.

    Raises:
      FingerprintError: the workdir holds a study of another backbone or
        other settings (names the field; delete the workdir to start afresh).
    """
    os.makedirs(workdir, exist_ok=True)
    meta_path = os.path.join(workdir, study.META)
    fields = study.fingerprint_fields(st, net)
    files = (study.META, study.DATA, study.NET2VEC, study.TCAV, "features")
    checks.resume_check(
        os.path.join(workdir, study.FINGERPRINT), fields,
        what=f"probe study {workdir}", fresh=f"delete {workdir}",
        guard=[os.path.join(workdir, f) for f in files],
    )  # fmt: skip
    for name in os.listdir(workdir):
        if is_temporary(name):
            os.remove(os.path.join(workdir, name))  # `study.save_npz` of a killed run
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            logging.info("probes in %s are complete; nothing to fit", workdir)
            return json.load(f)
    t0 = time.perf_counter()
    size = study.image_size(st, net)
    targets = study.tcav_targets(st, net.outputs)
    train, test = study.build_data(st, size)
    study.save_npz(os.path.join(workdir, study.DATA),
                   {"test_image": test["image"], "test_masks": test["masks"]})  # fmt: skip
    cache = {
        split: study.extract(net, data["image"], st,
                             os.path.join(workdir, "features", split), progress,
                             fingerprint=dict(fields, split=split))
        for split, data in (("train", train), ("test", test))
    }  # fmt: skip
    t1 = time.perf_counter()
    study.save_npz(os.path.join(workdir, study.NET2VEC),
                   fit_net2vec(st, cache["train"], train["masks"]))  # fmt: skip
    t2 = time.perf_counter()
    study.save_npz(os.path.join(workdir, study.TCAV),
                   fit_tcav(st, cache["train"], train["masks"]))  # fmt: skip
    t3 = time.perf_counter()
    present = train["masks"].reshape(train["masks"].shape[:2] + (-1,)).any(-1)
    meta = {
        "concepts": list(st.concepts),
        "layers": list(st.layers),
        "image_size": size,
        "num_train": len(train["image"]),
        "num_test": len(test["image"]),
        "train_images_per_concept": present.sum(0).tolist(),
        "targets": {c: list(t) for c, t in targets.items()},
        "seconds": {"data_and_features": t1 - t0, "net2vec": t2 - t1,
                    "tcav_cavs": t3 - t2},
    }  # fmt: skip
    write_json_atomic(meta_path, meta)
    return meta
