"""Running a discovery study: data, activations, dictionaries, evaluation.

`fit(study, workdir, net)` builds the SynthAerial scenes and concept masks,
extracts the layers' spatial activations and fits, per layer, `num_seeds`
dictionaries of each method on the (N h w, C) activation rows:

* "nmf": ICE's NMF (Zhang et al. 2021) of the post-ReLU activations, all
  seeds of a layer vmapped in one program (`bulk.nmf_layers`);
* "sae": a TopK sparse autoencoder (Gao et al. 2024), seeds vmapped over the
  same shuffled batches (`sae_stream.fit_sae`), read out as a
  `Factorization` (decoder rows, TopK codes, decoder bias as the mean).

The seeds of a layer differ only in their random init (the SAE seeds also
see the same batches in the same order), so seed stability measures how
much a method's dictionary depends on its initialization. `discover` runs
the whole study: `fit`, `evaluation.evaluate`, `report.figures` and
`report.markdown`.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery import evaluation, report, study
from jaxcxai.concepts.discovery.bulk import nmf_layers
from jaxcxai.concepts.discovery.common import Factorization, host_rng
from jaxcxai.concepts.discovery.sae import encode
from jaxcxai.concepts.discovery.sae_stream import fit_sae
from jaxcxai.concepts.discovery.study import DiscoveryStudy
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["discover", "fit", "fit_nmf_layers", "fit_sae_layer"]


def fit_nmf_layers(st: DiscoveryStudy, acts: dict, key) -> dict[str, Factorization]:
    """{layer: NMF `Factorization` with a leading seed axis} (one program per
    layer shape; seed s of layer i uses split(fold_in(key, i), S)[s])."""
    return nmf_layers(
        acts, st.num_components, key, st.num_seeds,
        solver=st.nmf.solver, iters=st.nmf.iters, l1=st.nmf.l1,
    )  # fmt: skip


@functools.partial(jax.jit, static_argnums=2)
def _encode_seeds(params, rows, active):
    return jax.vmap(encode, in_axes=(0, None, None))(params, rows, active)


def fit_sae_layer(st: DiscoveryStudy, acts, key) -> tuple[Factorization, dict]:
    """`num_seeds` TopK SAEs of one layer's rows, stacked as a `Factorization`.

    The rows are shuffled once on the host (`fit_sae` only shuffles within a
    block, and rows arrive sorted by image) and cut to whole batches, so
    each epoch is one `lax.scan` of one compiled program. The batch is capped
    at the number of rows (tiny layers); the size used is returned.

    Returns:
      (Factorization with components (S, m, C) unit decoder rows, codes
      (S, rows, m) of all rows in their original order, losses (S, steps)
      training MSE, mean (S, C) decoder bias; codes @ components + mean is
      the SAE's reconstruction), {"batch_size", "steps", "rows_used", "fvu" (final
      training fraction of variance unexplained per seed)}.
    """
    s = st.sae
    rows = np.asarray(acts, np.float32).reshape(-1, acts.shape[-1])
    k_shuffle, k_fit = jax.random.split(key)
    batch = min(s.batch_size, rows.shape[0])
    steps = rows.shape[0] // batch
    # Fewer than `batch` rows are left out of training (not of the codes).
    shuffled = rows[host_rng(k_shuffle).permutation(rows.shape[0])[: steps * batch]]
    # Whole passes over the rows until at least `sae.steps` steps: small
    # (late) layers get more passes, so every layer trains about as long.
    epochs = -(-s.steps // steps)
    state, hist = fit_sae(
        [shuffled], k_fit, num_latents=s.num_latents, k=s.active, batch_size=batch,
        learning_rate=s.learning_rate, num_seeds=st.num_seeds, epochs=epochs,
        batches_per_call=steps,
    )  # fmt: skip
    fac = Factorization(
        components=np.asarray(state.params["w_dec"]),
        codes=np.asarray(_encode_seeds(state.params, jnp.asarray(rows), s.active)),
        losses=np.asarray(hist["loss"]),
        mean=np.asarray(state.params["b_dec"]),
    )
    info = {
        "batch_size": batch,
        "steps": steps * epochs,
        "rows_used": int(hist["rows_used"]),
        "fvu": np.asarray(hist["fvu"])[:, -1].tolist(),
    }
    return fac, info


def _host(fac: Factorization) -> Factorization:
    return Factorization(*(np.asarray(a, np.float32) for a in fac))


def fit(st: DiscoveryStudy, workdir: str, net: TrainedBackbone, progress=False):
    """Builds the data, extracts activations and fits every dictionary.

    Writes `data.npz` and `dictionaries.npz` (see `study`).

    Returns:
      {"data": build_data's dict, "acts": {layer: (N, h, w, C)},
      "dictionaries": {layer: {method: Factorization (leading seed axis)}},
      "sae_info": {layer: ...}, "seconds": {...}}.
    """
    study.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    size = study.image_size(st, net)
    data = study.build_data(st, size)
    names = np.asarray(study.concept_names(st))
    study.save_npz(os.path.join(workdir, study.DATA), dict(data, concepts=names))
    acts = study.extract(net, data["image"], st, progress)
    t1 = time.perf_counter()
    key = jax.random.key(st.seed)
    dicts = {name: {} for name in st.layers}
    seconds = {"data_and_features": t1 - t0}
    if "nmf" in st.methods:
        for name, fac in fit_nmf_layers(st, acts, jax.random.fold_in(key, 0)).items():
            dicts[name]["nmf"] = _host(fac)
        seconds["nmf"] = time.perf_counter() - t1
    sae_info = {}
    if "sae" in st.methods:
        t2 = time.perf_counter()
        k_sae = jax.random.fold_in(key, 1)
        for i, name in enumerate(st.layers):
            fac, sae_info[name] = fit_sae_layer(
                st, acts[name], jax.random.fold_in(k_sae, i)
            )
            dicts[name]["sae"] = _host(fac)
        seconds["sae"] = time.perf_counter() - t2
    arrays = {}
    for name, by_method in dicts.items():
        for method, fac in by_method.items():
            p = f"{name}.{method}"
            arrays[f"{p}.components"] = fac.components
            arrays[f"{p}.mean"] = fac.mean
            arrays[f"{p}.codes"] = fac.codes[0]  # seed 0 only: the rest is big
            arrays[f"{p}.losses"] = fac.losses
    study.save_npz(os.path.join(workdir, study.DICTIONARIES), arrays)
    logging.info("discovery fits: %s", {k: round(v, 1) for k, v in seconds.items()})
    return {"data": data, "acts": acts, "dictionaries": dicts,
            "sae_info": sae_info, "seconds": seconds}  # fmt: skip


def discover(st: DiscoveryStudy, workdir: str, net: TrainedBackbone, progress=False):
    """The whole study: fit, evaluate, write results, report and figures.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `discover_results.json`)}.
    """
    fitted = fit(st, workdir, net, progress)
    t0 = time.perf_counter()
    results = evaluation.evaluate(st, fitted, net)
    t1 = time.perf_counter()
    figures = report.figures(st, fitted, results, workdir)
    results["seconds"] = dict(fitted["seconds"], evaluation=t1 - t0,
                              figures=time.perf_counter() - t1)  # fmt: skip
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study.REPORT), md + "\n")
    return {"markdown": md, "figures": figures, "results": results}
