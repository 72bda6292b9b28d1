"""Dissection of one model's successful adversarial examples (F1-F3).

Reconstruction (spec xai.md 2.2, steps 2-5) of Mikriukov et al. 2024 (arXiv
2403.16782). The successful (image, target) pairs of every attack at the
largest budget (and C&W) are pooled; per dissected layer:

* latent perturbations Delta = A_l(x_adv) - A_l(x) (`latent`), their GAP
  vectors delta (R, C);
* F2: a global decomposition of all delta (`decomposition.fit_components`),
  its explained-variance ratios, and the success of the attacks as the
  first m components are removed from the perturbation at the layer
  (`ablation.ablation_curve`) or only they are added to the clean
  activation (`ablation.add_only_curve`);
* F3: one direction per run (attack, source, target) with at least
  `dissect.min_samples` examples (`_run_vectors`), their Hungarian-matched
  |cos| matrix and the same-target minus different-target gap with a
  permutation p-value (`specificity`);
* F1: per target, ICE/NMF concepts of clean source, adversarial and clean
  target activations (`composition.concept_change`) on equal-size sets
  (`_equal_rows`), where the layer is non-negative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.adversarial import (
    ablation,
    composition,
    decomposition,
    latent,
    specificity,
)
from jaxcxai.adversarial.study import AdversarialStudy

__all__ = ["dissect", "layer_acts", "successful"]


def successful(src, results: dict, valid: np.ndarray) -> dict[str, np.ndarray]:
    """The successful valid (attack, target, image) triples, pooled.

    Args:
      src: the `models.Source`.
      results: {(attack, eps): AttackResult with (T, N) axes}.
      valid: (T, N) pairs whose source class is not the target.

    Returns:
      {"x" (R, ...) clean, "x_adv" (R, ...), "target" (R,) class, "attack"
      (R,) name, "image" (R,) source image index, "group" (R,) source name}.
    """
    parts = {k: [] for k in ("x", "x_adv", "target", "attack", "image", "group")}
    for (name, _), r in results.items():
        j, n = np.nonzero(np.asarray(r.success) & valid)
        parts["x"].append(src.images[n])
        parts["x_adv"].append(np.asarray(r.x_adv)[j, n])
        parts["target"].append(src.targets[j])
        parts["attack"].append(np.full(len(n), name))
        parts["image"].append(n)
        parts["group"].append(np.asarray(src.groups, object)[n].astype(str))
    return {k: np.concatenate(v) for k, v in parts.items()}


def layer_acts(src, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """{layer: (N, h, w, C)} activations of pixel images x (N, S, S, c).

    Every batch is padded to `batch_size` so each model compiles one program.
    """
    run = src.forward
    parts = []
    for i in range(0, len(x), batch_size):
        b = x[i : i + batch_size]
        pad = np.zeros((batch_size - len(b),) + b.shape[1:], b.dtype)
        out = run(np.concatenate([b, pad]) if len(pad) else b)
        parts.append({n: np.asarray(a)[: len(b)] for n, a in out.items()})
    return {n: np.concatenate([p[n] for p in parts]) for n in src.layers}


def _run_vectors(st: AdversarialStudy, d: np.ndarray, key) -> np.ndarray:
    """Reconstruction: the direction(s) of one run (attack, source, target);
    `dissect.specific = 0`: its mean perturbation direction (1, C), else its
    leading `specific` components (`fit_components`, the study's method)."""
    if st.dissect.specific == 0:
        return specificity.mean_direction(d)
    k = min(st.dissect.specific, *d.shape)
    return np.asarray(
        decomposition.fit_components(d, k, st.dissect.method, key).vectors
    )


def _specificity(st, rows, d, key, names) -> dict:
    """F3 on the runs with enough examples; a reason when it cannot run."""
    runs = sorted({(a, g, int(t)) for a, g, t in
                   zip(rows["attack"], rows["group"], rows["target"], strict=True)})  # fmt: skip
    units, vectors = [], []
    for i, (a, g, t) in enumerate(runs):
        sel = (rows["attack"] == a) & (rows["group"] == g) & (rows["target"] == t)
        if sel.sum() >= st.dissect.min_samples and np.abs(d[sel].mean(0)).max() > 0:
            units.append({"attack": a, "source": g, "target": names[t]})
            vectors.append(_run_vectors(st, d[sel], jax.random.fold_in(key, i)))
    labels = np.asarray([u["target"] for u in units])
    same = [(i, j) for i in range(len(units)) for j in range(i)
            if labels[i] == labels[j]]  # fmt: skip
    if len(units) < 3 or not same or len(set(labels.tolist())) < 2:
        return {"units": units, "skipped": f"{len(units)} runs with >= "
                f"{st.dissect.min_samples} successful examples; the gap needs two "
                "runs of one target and runs of two targets"}  # fmt: skip
    order = np.argsort(labels, kind="stable")  # blocks of one target
    units, vectors, labels = (
        [units[i] for i in order],
        [vectors[i] for i in order],
        labels[order],
    )
    m = specificity.component_similarity(vectors)
    gap = specificity.specificity_gap(m, labels, jax.random.fold_in(key, 10_000),
                                      permutations=st.dissect.permutations)  # fmt: skip
    return {"units": units, "matrix": m.tolist(), **gap}


def _equal_rows(a: np.ndarray, n: int, rng) -> np.ndarray:
    """Reconstruction: n images of a set (subsampled, or resampled with
    replacement when fewer), so the three ICE fits see sets of one size and
    share one compiled program."""
    idx = rng.choice(len(a), n, replace=len(a) < n)
    return a[np.sort(idx)]


def _composition(st, src, rows, acts, key, names) -> list[dict]:
    """F1 per target at one layer; [] when the layer has negative values.

    `acts`: {"clean" (N, h, w, C) of every source image, "adv" (R, h, w, C)
    of the successful examples, "target": {class: (M, h, w, C)}}.
    """
    rng, out = np.random.default_rng(st.seed), []
    n = st.dissect.concept_images
    for i, t in enumerate(src.targets):
        sel = rows["target"] == t
        if not sel.any():
            continue
        sets = [acts["clean"][np.unique(rows["image"][sel])], acts["adv"][sel],
                acts["target"][int(t)]]  # fmt: skip
        if min(float(s.min()) for s in sets) < 0:
            return []  # signed activations: no NMF concepts
        sets = [_equal_rows(s, n, rng) for s in sets]
        k = min(st.dissect.concepts, sets[0].shape[-1])
        c = composition.concept_change(*sets, k, jax.random.fold_in(key, i),
                                       gamma=st.dissect.gamma)  # fmt: skip
        out.append({"target": names[int(t)], "images": int(sel.sum()), "k": k,
                    **{f: c[f] for f in ("mean_cos_adv_src", "mean_cos_adv_tgt",
                                         "mean_cos_src_tgt", "new_vs_src", "new_vs_tgt",
                                         "new", "shift_toward_target")},
                    "cos_adv_src": c["cos_adv_src"].tolist(),
                    "weight_shift": c["weight_shift"].tolist()})  # fmt: skip
    return out


def _curve(c: dict, key: str) -> dict:
    return {key: c[key].tolist(), "success": c["success"].tolist(),
            "target_logit": c["target_logit"].tolist(), "order": c["order"].tolist()}  # fmt: skip


def dissect(st: AdversarialStudy, src, results: dict, valid, key):
    """F1-F3 of one model at each of its layers.

    Returns:
      (results, arrays): {"num_examples", "layers": {layer: {"evr",
      "ablation", "add_only", "specificity", "composition"}}} and arrays
      {"<layer>.delta" (R, C), "<layer>.components" (k, C), "<layer>.
      target" (R,), "<layer>.attack" (R,)}.
    """
    rows = successful(src, results, valid)
    out, arrays = {"num_examples": int(len(rows["target"])), "layers": {}}, {}
    if len(rows["target"]) < 2:
        out["skipped"] = f"{len(rows['target'])} successful examples; need 2"
        return out, arrays
    names, x = src.class_names, jnp.asarray(src.to_input(rows["x"]))
    x_adv = jnp.asarray(src.to_input(rows["x_adv"]))
    deltas = latent.latent_perturbation(src.apply, rows["x"], rows["x_adv"],
                                        src.layers, st.batch_size)  # fmt: skip
    adv_acts = layer_acts(src, rows["x_adv"], st.batch_size)
    clean_acts = layer_acts(src, src.images, st.batch_size)
    tgt_acts = {int(t): layer_acts(src, src.target_images[int(t)], st.batch_size)
                for t in src.targets}  # fmt: skip
    for li, layer in enumerate(src.layers):
        k_l = jax.random.fold_in(key, li)
        spatial = np.asarray(deltas[layer])
        d = np.asarray(latent.gap(spatial))
        k = min(st.dissect.components, *d.shape)
        comps = decomposition.fit_components(d, k, st.dissect.method, k_l)
        kw = dict(order=st.dissect.order, batch_size=st.batch_size,
                  num_classes=src.num_classes)  # fmt: skip
        args = (
            src.model,
            src.variables,
            x_adv,
            x,
            layer,
            spatial,
            comps,
            rows["target"],
        )
        abl, add = (
            ablation.ablation_curve(*args, **kw),
            ablation.add_only_curve(*args, **kw),
        )
        out["layers"][layer] = {
            "channels": int(d.shape[1]),
            "evr": np.asarray(comps.explained_variance_ratio).tolist(),
            "ablation": _curve(abl, "removed"), "add_only": _curve(add, "added"),
            "specificity": _specificity(st, rows, d, jax.random.fold_in(k_l, 1), names),
            "composition": _composition(
                st, src, rows, {"clean": clean_acts[layer], "adv": adv_acts[layer],
                                "target": {t: a[layer] for t, a in tgt_acts.items()}},
                jax.random.fold_in(k_l, 2), names),
        }  # fmt: skip
        arrays[f"{layer}.delta"] = d
        arrays[f"{layer}.components"] = np.asarray(comps.vectors)
    arrays["target"], arrays["attack"] = rows["target"], rows["attack"]
    arrays["image"] = rows["image"]
    return out, arrays
