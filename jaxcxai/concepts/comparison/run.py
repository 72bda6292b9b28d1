"""Running a comparison study: probes per network, their outputs, similarities.

`fit(study, workdir)` loads the networks (`study.load_networks`), builds a
training and a held-out split of SynthAerial scenes and, per network:

* extracts its layers' activations on the training scenes and fits K
  concepts x L layers x R runs of Net2Vec probes in bulk
  (`probes.bulk.fit_net2vec_layers`) and, per layer, K x R concept-vs-random
  CAVs (`probes.cavs.fit_cavs` on TCAV's example sets);
* on the held-out scenes, computes each layer's Net2Vec masks on the common
  G x G grid (the R runs aggregated by their mean signed distance,
  `net2vec.mean_normalized_embedding`; `outputs.net2vec_layer_masks`) and
  CAV projections (`outputs.cav_layer_projections`), and keeps the raw
  activations for CKA.

`compare(study, workdir)` runs the whole study: `fit`, then for every pair
of networks, A = B included, the (La, Lb) concept similarities (set IoU of
the masks, Pearson of the projections; `similarity.layer_similarity`), the
linear CKA of the raw activations (`cka.cka_matrix`) and the best matches
(`depth.best_match`), the planted checks (`report.planted_checks`), figures
and report.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np

from jaxcxai import features, parallel
from jaxcxai.concepts.comparison import (
    cka,
    depth,
    figures,
    outputs,
    report,
    similarity,
    study,
)
from jaxcxai.concepts.comparison.study import CompareStudy, Network
from jaxcxai.concepts.probes import bulk, cavs, net2vec, pipeline, sources
from jaxcxai.concepts.probes.net2vec import Probe
from jaxcxai.concepts.probes.state import Net2VecConfig
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic

__all__ = ["aggregate_runs", "build_data", "compare", "compare_pair",
           "extract", "fit", "fit_layer_cavs", "fit_network"]  # fmt: skip


def aggregate_runs(probe: Probe) -> Probe:
    """(K, R, C) probes -> (K, C): the probe whose signed distance is the mean
    of the R runs' (hybrid_learning's MEAN_NORMALIZED_DIST)."""
    emb = net2vec.mean_normalized_embedding(net2vec.probe_to_embedding(probe), axis=1)
    return net2vec.embedding_to_probe(emb)


def build_data(st: CompareStudy, size: int) -> tuple[dict, dict]:
    """(train, test): {"image" (N, S, S, 3) uint8, "masks" (N, K, S, S) uint8,
    "present" (N, K) bool}."""
    d = st.data
    ids = [synthaerial.CONCEPTS.index(c) + 1 for c in st.concepts]

    def split(num, seed):
        g = synthaerial.generate(num, size=size, seed=seed,
                                 boat_on_water_p=d.boat_on_water_p)  # fmt: skip
        masks = pipeline.concept_masks(g["class_mask"], ids)
        return {"image": g["image"], "masks": masks,
                "present": masks.reshape(masks.shape[:2] + (-1,)).any(-1)}  # fmt: skip

    return split(d.num_train, d.seed), split(d.num_test, d.test_seed)


def extract(net: Network, images, st: CompareStudy, dtype=np.float32, progress=False):
    """{layer: (N, h, w, C)} activations of `net.layers`, in memory."""
    acts = features.extract(
        net.net.apply, images, list(net.layers), batch_size=st.batch_size,
        mesh=parallel.make_mesh(), dtype=dtype, pool=False, progress=progress,
    )  # fmt: skip
    return {name: np.asarray(acts[name]) for name in net.layers}


def _grid_masks(masks: np.ndarray, grid: int) -> np.ndarray:
    """(N, K, S, S) labels -> (K, N, G, G) bool, nearest-neighbour sampled."""
    s = masks.shape[-1]
    idx = np.minimum(((np.arange(grid) + 0.5) * s / grid).astype(int), s - 1)
    return np.moveaxis(masks[:, :, idx][..., idx] > 0, 1, 0)


def fit_layer_cavs(acts: np.ndarray, sets: dict, c) -> cavs.Cavs:
    """CAVs (K', R, d) of one layer's (N, h, w, C) training activations.

    The features are zero-padded to d' (the next power of two >= 128, or
    of 4096 beyond) before `fit_cavs` and the CAVs cut back to d: the
    solvers work in the span of the examples (Gram matrices), so padding
    changes no CAV, and layers of similar width share one compiled program.
    """
    pos = np.asarray(cavs.flatten_acts(acts[sets["concept_rows"]], c.pool))
    neg = np.asarray(cavs.flatten_acts(acts[sets["random_rows"]], c.pool))
    d = pos.shape[-1]
    width = max(128, 1 << (d - 1).bit_length()) if d <= 4096 else -(-d // 4096) * 4096
    pad = ((0, 0), (0, 0), (0, width - d))
    fitted = cavs.fit_cavs(np.pad(pos, pad), np.pad(neg, pad), method=c.method,
                           alpha=c.alpha)  # fmt: skip
    return cavs.Cavs(fitted.direction[..., :d], fitted.weight[..., :d], fitted.bias)


def fit_network(st: CompareStudy, net: Network, train: dict, test: dict, key,
                progress=False) -> dict:  # fmt: skip
    """Fits one network's probes and computes its held-out outputs.

    Returns:
      {"masks" (L, K, N, G, G) bool, "projections" (L, K', N) or None,
      "acts" [(N, h, w, C)] held-out activations, "shapes", "probe_iou"
      (L, K) set IoU of the masks with the true masks, "seconds"}.
    """
    t0 = time.perf_counter()
    layers, n = list(net.layers), len(train["image"])
    # One pass over both splits (one compiled forward pass), stored as float16.
    both = extract(net, np.concatenate([train["image"], test["image"]]), st,
                   np.float16, progress)  # fmt: skip
    acts = {k: v[:n] for k, v in both.items()}
    n2v = st.net2vec
    config = Net2VecConfig(objective=n2v.objective, optimizer=n2v.optimizer,
                           learning_rate=n2v.lr, weight_decay=0.0,
                           batch_size=n2v.batch_size, epochs=n2v.epochs)  # fmt: skip
    fitted = bulk.fit_net2vec_layers(
        sources.array_source(acts, train["masks"], shuffle_seed=st.seed), layers,
        {k: acts[k].shape for k in layers}, key, config=config, num_runs=n2v.runs,
        alpha=net2vec.foreground_alpha(train["masks"]), mesh=parallel.make_mesh(),
    )  # fmt: skip
    probes = [aggregate_runs(fitted[k]) for k in layers]
    c = st.cav
    sets = pipeline.sample_sets(train["present"], c.num_concept_images,
                                c.num_random_images, c.num_random, st.seed)  # fmt: skip
    layer_cavs = []
    if len(sets["concepts"]):
        layer_cavs = [fit_layer_cavs(acts[k], sets, c) for k in layers]
    t1 = time.perf_counter()
    held = [np.asarray(both[k][n:], np.float32) for k in layers]
    del acts, both
    grid = st.grid or test["image"].shape[1]
    masks = np.asarray(outputs.net2vec_layer_masks(probes, held, grid, batch_size=64))
    proj = None
    if layer_cavs:
        proj = np.asarray(outputs.cav_layer_projections(layer_cavs, held, pool=c.pool))
    truth = _grid_masks(test["masks"], grid)
    iou = np.stack([np.asarray(similarity.set_iou(m, truth)) for m in masks])
    seconds = {"fit": t1 - t0, "outputs": time.perf_counter() - t1}
    logging.info("comparison: %s: layers %s, fit %.1f s, outputs %.1f s", net.name,
                 ", ".join(layers), seconds["fit"], seconds["outputs"])  # fmt: skip
    return {"masks": masks, "projections": proj, "acts": held,
            "shapes": {k: list(a.shape[1:]) for k, a in zip(layers, held)},
            "probe_iou": iou, "cav_concepts": sets["concepts"], "seconds": seconds}  # fmt: skip


def fit(st: CompareStudy, workdir: str, progress=False) -> dict:
    """Networks, data and every network's outputs; writes data/outputs.npz.

    Returns:
      {"networks" [Network], "skipped" [workdir], "train", "test" (splits),
      "fitted" {name: fit_network's dict}, "image_size", "grid", "seconds"}.
    """
    study.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    nets, skipped, size = study.load_networks(st)
    train, test = build_data(st, size)
    study.save_npz(os.path.join(workdir, study.DATA),
                   {"image": test["image"], "masks": test["masks"],
                    "concepts": np.asarray(st.concepts)})  # fmt: skip
    key = jax.random.key(st.seed)
    fitted = {n.name: fit_network(st, n, train, test, jax.random.fold_in(key, i),
                                  progress) for i, n in enumerate(nets)}  # fmt: skip
    arrays = {}
    for name, f in fitted.items():
        arrays[f"{name}.masks"] = f["masks"]
        if f["projections"] is not None:
            arrays[f"{name}.projections"] = f["projections"]
    study.save_npz(os.path.join(workdir, study.OUTPUTS), arrays)
    return {"networks": nets, "skipped": skipped, "train": train, "test": test,
            "fitted": fitted, "image_size": size, "grid": st.grid or size,
            "seconds": {"fit": time.perf_counter() - t0}}  # fmt: skip


def compare_pair(fa: dict, fb: dict, self_pair: bool) -> dict:
    """{kind: {"matrix" (La, Lb), "per_concept" (La, Lb, K) or None,
    "matches": `report.matches`}} of two fitted networks."""
    out = {}
    sim = similarity.layer_similarity(fa["masks"], fb["masks"], "iou")
    out["iou"] = (sim.mean, sim.per_concept)
    if fa["projections"] is not None and fb["projections"] is not None:
        sim = similarity.layer_similarity(fa["projections"], fb["projections"],
                                          "pearson")  # fmt: skip
        out["pearson"] = (sim.mean, sim.per_concept)
    out["cka"] = (cka.cka_matrix(fa["acts"], fb["acts"]), None)
    return {kind: {"matrix": np.asarray(m, np.float64),
                   "per_concept": None if p is None else np.asarray(p, np.float64),
                   "matches": report.matches(np.asarray(m), self_pair)}
            for kind, (m, p) in out.items()}  # fmt: skip


def _network_result(net: Network, f: dict) -> dict:
    return {"kind": net.kind, "model": net.net.meta.model, "source": net.source,
            "input_size": net.input_size, "layers": list(net.layers),
            "depth": np.asarray(depth.relative_depth(len(net.layers))).tolist(),
            "layer_shapes": f["shapes"], "probe_iou": f["probe_iou"].tolist(),
            "seconds": f["seconds"]}  # fmt: skip


def compare(st: CompareStudy, workdir: str, progress=False) -> dict:
    """The whole study: fit, compare every pair, check, write files.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `compare_results.json`)}.
    """
    fitted = fit(st, workdir, progress)
    t0 = time.perf_counter()
    nets, fits = fitted["networks"], fitted["fitted"]
    pairs, arrays = [], {}
    for i, a in enumerate(nets):
        for b in nets[i:]:
            r = compare_pair(fits[a.name], fits[b.name], a is b)
            for kind, v in r.items():
                arrays[f"{a.name}|{b.name}|{kind}"] = v["matrix"]
                if v["per_concept"] is not None:
                    arrays[f"{a.name}|{b.name}|{kind}|per_concept"] = v["per_concept"]
            pairs.append({"a": a.name, "b": b.name, "self": a is b,
                          **{k: {"matrix": v["matrix"].tolist(),
                                 "matches": v["matches"]} for k, v in r.items()}})  # fmt: skip
    study.save_npz(os.path.join(workdir, study.SIMILARITY), arrays)
    cav_concepts = fits[nets[0].name]["cav_concepts"]
    results = {
        "concepts": list(st.concepts),
        "cav_concepts": [st.concepts[k] for k in cav_concepts],
        "num_train": len(fitted["train"]["image"]),
        "num_test": len(fitted["test"]["image"]),
        "test_images_per_concept": fitted["test"]["present"].sum(0).tolist(),
        "image_size": fitted["image_size"], "grid": fitted["grid"],
        "networks": {n.name: _network_result(n, fits[n.name]) for n in nets},
        "skipped": fitted["skipped"],
        "pairs": pairs,
    }  # fmt: skip
    results["checks"] = report.planted_checks(results, st.checks, st.seed)
    t1 = time.perf_counter()
    figs = figures.figures(results, workdir)
    results["seconds"] = dict(fitted["seconds"], compare=t1 - t0,
                              figures=time.perf_counter() - t1)  # fmt: skip
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
