"""Running a stability study: retrieval cells, ICE dictionaries, attribution.

`stability(study, workdir, net)` builds the labelled SynthAerial scenes
(`study`), extracts the layers' activations and measures, after Mikriukov et
al. 2023 (arXiv 2304.14864):

* `fit_retrieval`: per concept x layer x view x sample count n, R CAVs on R
  random subsets of n positive + n negative pool scenes (`runs.fit_subsets`;
  the subsets depend on (seed, concept, n) only, so every layer and view
  fits the same scenes), their consistency, held-out separation on M + M
  scenes per concept and S. Every view is fitted at one width
  (`span_features`, exact), so each n compiles one fit program;
* `fit_ice`: NMF dictionaries per layer and seed (`discovery.bulk`),
  matched by `retrieval.ice_consistency`;
* `attribution_stability`: the attribution of the predicted scene logit to
  each concept's 1D and 3D CAV over T noise keys, at one noisy copy
  ("plain") and with SmoothGrad (`attribution.repeated_attribution`), and
  single vs batched layer gradients (`instability.batch_instability`).
  A 1D CAV v enters as the 3D CAV tile(v) / (h w): <g, tile(v) / (h w)> =
  <mean_hw g, v>, so one smoothed gradient per image serves both views.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import attribution as attr
from jaxcxai import parallel
from jaxcxai.attribution.methods import image_model
from jaxcxai.concepts.discovery import bulk
from jaxcxai.concepts.stability import attribution as concept_attr
from jaxcxai.concepts.stability import figures, instability, report, retrieval, study
from jaxcxai.concepts.stability import representations as views
from jaxcxai.concepts.stability import runs as run_lib
from jaxcxai.concepts.stability.study import StabilityStudy
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["SAVE_WIDTH", "attribution_stability", "fit_ice", "fit_retrieval",
           "span_features", "stability"]  # fmt: skip

SAVE_WIDTH = 4096  # retrieval CAVs up to this width are saved in cavs.npz


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[stability] {text}", flush=True)


def span_features(pool, held, width: int):
    """Pool and held-out rows of one view at the common fitting width.

    A view no wider than `width` is zero-padded to it (zero features get
    zero weight). A wider one is expressed in an orthonormal basis of the
    pool rows' span: with the pool Gram matrix X X^T = U diag(lam) U^T, the
    rows become Z = U diag(sqrt lam) and held-out rows x X^T U diag(1 /
    sqrt lam). A CAV fitted on any pool rows lies in their span (the
    classifier's solution and its centring mean are combinations of them),
    so its inner products, cosines and held-out projections are unchanged
    up to rounding.

    Returns:
      (pool (N, width), held (M, width), unmap: (R, width) weights -> (R, D)
      weights on the view's own features).
    """
    pool, held = np.asarray(pool, np.float32), np.asarray(held, np.float32)
    d = pool.shape[1]
    if d <= width:
        pad = ((0, 0), (0, width - d))
        return np.pad(pool, pad), np.pad(held, pad), lambda w: w[:, :d]
    lam, u = np.linalg.eigh((pool @ pool.T).astype(np.float64))
    keep = lam > lam[-1] * 1e-6
    k, back = int(keep.sum()), u[:, keep] / np.sqrt(lam[keep])
    z, zh = (np.zeros((len(a), width), np.float32) for a in (pool, held))
    z[:, :k], zh[:, :k] = u[:, keep] * np.sqrt(lam[keep]), (held @ pool.T) @ back
    return z, zh, lambda w: (w[:, :k] @ back.T) @ pool


def _cell(pool, held_pos, held_neg, pi, ni, r, mesh):
    """One (concept, layer, view, n): the R fits and their row of results."""
    fit = run_lib.fit_subsets(pool, pool, pi, ni, method=r.method, alpha=r.alpha,
                              steps=r.steps, mesh=mesh)  # fmt: skip
    sep = retrieval.run_separation(fit, held_pos, held_neg, metric=r.metric)
    con = retrieval.run_consistency(fit.direction)
    sep_m, con_m = float(jnp.mean(sep)), float(jnp.mean(con))
    return fit, {"stability": float(retrieval.combine(sep_m, con_m)),
                 "separation": sep_m, "consistency": con_m,
                 "run_separation": np.asarray(sep).tolist(),
                 "run_consistency": np.asarray(con).tolist()}  # fmt: skip


def fit_retrieval(st: StabilityStudy, acts: dict, labels, held, progress=False):
    """Every retrieval cell; returns (rows, arrays for cavs.npz, attributed).

    `labels` (N, K) of the pool then held-out scenes, `held` (K, 2, M)
    held-out rows. `attributed[layer][dim][concept]` = (run 0's unit CAV,
    n) at the concept's largest fitted n (what `attribution_stability` uses).
    """
    r, names = st.retrieval, [c["name"] for c in study.concept_table(st)]
    n_train = st.data.num_train
    cells = study.draw_cells(labels[:n_train], r.samples, r.runs, st.seed)
    top = {k: max(m for (j, m) in cells if j == k) for k, _ in cells}
    width = min(n_train, max(views.feature_size(a.shape[1:], d)
                             for a in acts.values() for d in r.dims))  # fmt: skip
    mesh = parallel.make_mesh() if st.sharded else None
    rows, arrays, attributed = [], {}, {}
    for (k, n), (pi, ni) in cells.items():
        arrays[f"{names[k]}.n{n}.pos_rows"] = pi
        arrays[f"{names[k]}.n{n}.neg_rows"] = ni
    for layer in st.layers:
        for dim in r.dims:
            t0 = time.perf_counter()
            x = np.asarray(views.represent(acts[layer], dim))
            pool, held_x, unmap = span_features(x[:n_train], x[n_train:], width)
            pool, d = jnp.asarray(pool), x.shape[1]
            for (k, n), (pi, ni) in cells.items():
                fit, row = _cell(pool, held_x[held[k, 0]], held_x[held[k, 1]], pi, ni,
                                 r, mesh)  # fmt: skip
                rows.append(dict(concept=names[k], layer=layer, dim=dim, samples=n,
                                 **row))  # fmt: skip
                if d > SAVE_WIDTH and n != top[k]:
                    continue
                w = unmap(np.asarray(fit.weight))  # on the view's own features
                if d <= SAVE_WIDTH:
                    arrays[f"{names[k]}.{layer}.{dim}.n{n}.weight"] = w
                    arrays[f"{names[k]}.{layer}.{dim}.n{n}.bias"] = np.asarray(fit.bias)
                if n == top[k]:
                    by_dim = attributed.setdefault(layer, {}).setdefault(dim, {})
                    by_dim[names[k]] = (w[0] / np.linalg.norm(w[0]), n)
            _say(progress, f"retrieval {layer} {dim} (D={d}): {len(cells)} cells "
                           f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    for layer, by_dim in attributed.items():
        for dim, got in by_dim.items():
            arrays[f"attributed.{layer}.{dim}"] = np.stack([v for v, _ in got.values()])
    return rows, arrays, attributed


def fit_ice(st: StabilityStudy, acts: dict, key) -> dict:
    """{layer: {"consistency", "per_run", "k", "rel_error"}}: NMF dictionaries
    of the first `ice.num_images` pool scenes' activation rows, one per seed
    (seeds differ in their random init), matched to seed 0."""
    s = st.ice
    sub = {name: acts[name][: s.num_images] for name in st.layers}
    facs = bulk.nmf_layers(sub, s.num_components, key, s.seeds, iters=s.iters)
    out = {}
    for name, fac in facs.items():
        con, per_run, _ = retrieval.ice_consistency(np.asarray(fac.components))
        err = np.sqrt(2 * np.asarray(fac.losses)[:, -1]) / np.linalg.norm(sub[name])
        out[name] = {"consistency": con, "per_run": per_run.tolist(),
                     "k": s.num_components, "rel_error": float(err.mean())}  # fmt: skip
    return out


def _spread(values) -> dict:
    """Spread of (T, N, K) repeated attributions: mean pairwise sign-flip
    rate, median coefficient of variation, share with one sign in all T."""
    v = np.asarray(values)
    flips = [float(instability.sign_flip_rate(v[i], v[j]))
             for i in range(len(v)) for j in range(i + 1, len(v))]  # fmt: skip
    cv = float(np.median(np.asarray(instability.coefficient_of_variation(v))))
    agree = [float(instability.variability(v[:, :, k])["sign_agreement"])
             for k in range(v.shape[2])]  # fmt: skip
    return {"sign_flip_rate": float(np.mean(flips)),
            "median_cv": cv if np.isfinite(cv) else None,
            "sign_agreement": float(np.mean(agree))}  # fmt: skip


def _cav_stack(by_dim: dict, shape) -> tuple[np.ndarray, dict]:
    """(K', h, w, C) CAVs of one layer (1D ones tiled / (h w)), {dim: slice}."""
    h, w, c = shape
    stack, spans = [], {}
    for dim in [d for d in ("1d", "3d") if d in by_dim]:
        v = np.stack([u for u, _ in by_dim[dim].values()])
        if dim == "1d":  # <g, tile(v) / (h w)> = <mean_hw g, v>
            v = np.broadcast_to(v[:, None, None, :] / (h * w), (len(v), h, w, c))
        start = sum(len(s) for s in stack)
        spans[dim] = slice(start, start + len(v))
        stack.append(np.asarray(v, np.float32).reshape(len(v), h, w, c))
    return (np.concatenate(stack) if stack else None), spans


def attribution_stability(st: StabilityStudy, net: TrainedBackbone, images,
                          attributed: dict, shapes: dict, key, progress=False):  # fmt: skip
    """Attribution stability of the first `attribution.num_images` `images`.

    Args:
      attributed: {layer: {dim: {concept: (unit CAV (D,), n)}}} ("1d"/"3d").
      shapes: {layer: (h, w, C)}.

    Returns:
      {layer: {dim: {"plain", "smooth": `_spread`}}, "batch": {layer:
      `instability.Instability` fields}, "target": predicted scene names}.
    """
    a, f = st.attribution, image_model(net)
    x = np.asarray(images[: a.num_images], np.float32) / 255.0
    logits = np.asarray(jax.jit(f)(x)[0])
    target = jnp.asarray(logits[:, : net.meta.num_classes].argmax(1), jnp.int32)
    mesh = parallel.make_mesh() if st.sharded else None
    plain_kw = concept_attr.smoothing(1, quirk_noise_scale=a.quirk_noise_scale,
                                      sigma=a.sigma) | {"keep_clean": False}  # fmt: skip
    out = {"target": [net.outputs[i] for i in np.asarray(target)]}
    for i, layer in enumerate(st.layers):
        t0 = time.perf_counter()
        cav, spans = _cav_stack(attributed.get(layer, {}), shapes[layer])
        if cav is None:
            continue
        k_s, k_p = jax.random.split(jax.random.fold_in(key, i))
        smooth = np.asarray(concept_attr.repeated_attribution(
            f, x, layer, cav, target, key=k_s, repeats=a.repeats, dim="3d",
            n=a.copies, quirk_noise_scale=a.quirk_noise_scale, sigma=a.sigma,
            mesh=mesh))  # fmt: skip
        plain = np.stack([attr.concept_attribution(
            f, x, layer, cav, target, kind="3d", key=jax.random.fold_in(k_p, t),
            mesh=mesh, **plain_kw) for t in range(a.repeats)])  # fmt: skip
        out[layer] = {dim: {"plain": _spread(plain[..., sl]),
                            "smooth": _spread(smooth[..., sl])}
                      for dim, sl in spans.items()}  # fmt: skip
        _say(progress, f"attribution {layer}: {len(cav)} CAVs x {len(x)} scenes x "
                       f"{a.repeats} repeats in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    batch = instability.batch_instability(f, x, st.layers, target, mode=a.batch_mode)
    out["batch"] = {n: {k: float(v) for k, v in b._asdict().items()}
                    for n, b in batch.items()}  # fmt: skip
    return out


def _settings(st: StabilityStudy, labels, held, shapes: dict, rows: list) -> dict:
    """The results' description of what ran: sizes, concepts, skipped cells."""
    r, n = st.retrieval, st.data.num_train
    done = {(row["concept"], row["samples"]) for row in rows}
    concepts = [dict(c, train_positives=int(labels[:n, k].sum()),
                     train_negatives=int((~labels[:n, k]).sum()),
                     heldout_positives=int(labels[n:, k].sum()))
                for k, c in enumerate(study.concept_table(st))]  # fmt: skip
    return {
        "num_train": n, "num_heldout": st.data.num_heldout,
        "heldout_per_class": int(held.shape[2]), "data_seed": st.data.seed,
        "pool_scenes": list(st.data.scenes) or None, "layers": list(st.layers),
        "layer_shapes": {k: list(v) for k, v in shapes.items()},
        "feature_sizes": {k: {d: views.feature_size(v, d) for d in r.dims}
                          for k, v in shapes.items()},
        "dims": list(r.dims), "samples": list(r.samples), "runs": r.runs,
        "method": r.method, "metric": r.metric, "concepts": concepts,
        "skipped": [{"concept": c["name"], "samples": m} for c in concepts
                    for m in r.samples if (c["name"], m) not in done],
        "ice_settings": dataclasses.asdict(st.ice),
        "attribution_settings": dataclasses.asdict(st.attribution),
        "backend": jax.default_backend(), "devices": jax.device_count(),
    }  # fmt: skip


def stability(st: StabilityStudy, workdir: str, net: TrainedBackbone, progress=False):
    """The whole study: data, retrieval, ICE, attribution, report, figures.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `stability_results.json`)}.
    """
    study.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    t0, table = time.perf_counter(), study.concept_table(st)
    data = study.build_data(st, study.image_size(st, net))
    labels, n_train = data["labels"], st.data.num_train
    held = study.heldout_rows(labels[n_train:], st.seed)
    study.save_npz(os.path.join(workdir, study.DATA), dict(
        data, heldout_rows=held, concepts=np.asarray([c["name"] for c in table]),
        levels=np.asarray([c["level"] for c in table])))  # fmt: skip
    acts = study.extract(net, data["image"], st, progress)
    shapes = {name: tuple(acts[name].shape[1:]) for name in st.layers}
    seconds = {"data_and_features": time.perf_counter() - t0}
    _say(progress, f"{len(labels)} scenes and activations in "
                   f"{seconds['data_and_features']:.1f} s")  # fmt: skip
    t0 = time.perf_counter()
    rows, arrays, attributed = fit_retrieval(st, acts, labels, held, progress)
    seconds["retrieval"], t0 = time.perf_counter() - t0, time.perf_counter()
    key = jax.random.key(st.seed)
    ice = fit_ice(st, acts, jax.random.fold_in(key, 0))
    seconds["ice"], t0 = time.perf_counter() - t0, time.perf_counter()
    _say(progress, f"ICE: {st.ice.seeds} NMF dictionaries x {len(st.layers)} "
                   f"layers in {seconds['ice']:.1f} s")  # fmt: skip
    attribution = attribution_stability(st, net, data["image"][n_train:], attributed,
                                        shapes, jax.random.fold_in(key, 1), progress)  # fmt: skip
    seconds["attribution"], t0 = time.perf_counter() - t0, time.perf_counter()
    study.save_npz(os.path.join(workdir, study.CAVS), arrays)
    results = dict(_settings(st, labels, held, shapes, rows), retrieval=rows, ice=ice,
                   attribution=attribution, image_size=int(data["image"].shape[1]),
                   attributed_samples={c: n for by in attributed.values()
                                       for d in by.values() for c, (_, n) in d.items()})  # fmt: skip
    results["planted"] = report.planted_checks(results)
    figs = figures.figures(results, workdir)
    results["seconds"] = dict(seconds, figures=time.perf_counter() - t0)
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
