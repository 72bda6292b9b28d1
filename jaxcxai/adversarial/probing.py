"""Supervised concept probes of clean vs adversarial images (F1) and the
planted check, on the SynthAerial backbone.

Reconstruction (spec xai.md 2.2, step 3 and the issue's items 3 and 6) of
the supervised side of Mikriukov et al. 2024 (arXiv 2403.16782): the
concepts are SynthAerial's object classes, whose masks are known.

* CAVs (Kim et al. 2018, `jaxcxai.concepts.probes.fit_cavs`) of every
  concept at each layer, on spatially mean-pooled activations (1D-CAVs,
  d = C, the space of the GAP perturbations), fitted against `num_random`
  random sets of SynthAerial scenes and averaged over them (`_cavs`);
* TCAV scores (`probes.directional_derivatives`, `tcav_scores`) of each
  concept for each target class on the clean source images vs their
  adversarial examples towards that target;
* Net2Vec probes (Fong & Vedaldi 2018, `probes.fit_net2vec`) of every
  concept, and their set IoU and predicted area on the clean source images
  vs the adversarial examples (the masks are the clean scene's: the attack
  changes no object);
* planted check: SynthAerial's harbor scenes are defined by boats, so the
  mean latent perturbation of the attacks towards harbor should point
  along the boat CAV more than the perturbations towards other targets
  (`planted_check`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.adversarial.dissection import layer_acts, successful
from jaxcxai.adversarial.study import AdversarialStudy
from jaxcxai.concepts import probes
from jaxcxai.concepts.probes import net2vec, pipeline
from jaxcxai.data import synthaerial

__all__ = ["planted_check", "probe", "probe_data", "set_iou"]


def probe_data(st: AdversarialStudy, size: int) -> dict[str, np.ndarray]:
    """SynthAerial scenes of all classes (another seed) with concept masks.

    Returns:
      {"images" (N, S, S, 3) in [0, 1], "masks" (N, K, S, S) uint8,
      "present" (N, K) bool}.
    """
    g = synthaerial.generate(st.probes.num_images, size=size,
                             seed=st.scenes.seed + 50_000)  # fmt: skip
    ids = range(1, len(synthaerial.CONCEPTS) + 1)
    return {"images": g["image"].astype(np.float32) / np.float32(255),
            "masks": pipeline.concept_masks(g["class_mask"], ids),
            "present": g["objects_present"]}  # fmt: skip


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _cavs(st, feats, present) -> tuple[np.ndarray, np.ndarray]:
    """(kept concept ids (K',), unit CAVs (K', C)) averaged over random sets."""
    q = st.probes
    sets = pipeline.sample_sets(present, q.num_concept, q.num_concept, q.num_random,
                                st.seed)  # fmt: skip
    cavs = probes.fit_cavs(feats[sets["concept_rows"]], feats[sets["random_rows"]],
                           method=q.cav_method)  # fmt: skip
    return sets["concepts"], _unit(np.asarray(cavs.direction, np.float64).mean(1))


def set_iou(logits: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per concept: set IoU of (logits > 0) with masks over all images, and
    the predicted area fraction. logits, masks: (K, N, H, W)."""
    pred, true = np.asarray(logits) > 0, np.asarray(masks) > 0
    inter = (pred & true).sum((1, 2, 3))
    union = (pred | true).sum((1, 2, 3))
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return iou, pred.mean((1, 2, 3))


def _tcav(src, rows, clean, adv, head, cav, concepts) -> list[dict]:
    """TCAV scores per (target, concept) on the clean source images attacked
    successfully towards the target vs their adversarial examples.

    Every (target, set) goes through one backward pass with per-example
    targets, so a layer compiles one program.
    """
    if adv is None:
        return []
    segments, acts, tgt = [], [], []
    for t in src.targets:
        sel = rows["target"] == t
        if sel.any():
            for name, a in (("clean", clean[np.unique(rows["image"][sel])]),
                            ("adv", adv[sel])):  # fmt: skip
                segments.append((int(t), name, len(a), int(sel.sum())))
                acts.append(a)
                tgt.append(np.full(len(a), t, np.int32))
    if not acts:
        return []
    deriv = np.asarray(probes.directional_derivatives(
        head, np.concatenate(acts), np.concatenate(tgt), jnp.asarray(cav, jnp.float32)))  # fmt: skip
    scores, start = {}, 0
    for t, name, n, _ in segments:
        scores[t, name] = np.asarray(probes.tcav_scores(deriv[:, start : start + n]))
        start += n
    names = src.class_names
    return [{"target": names[t], "concept": c, "clean": float(scores[t, "clean"][i]),
             "adv": float(scores[t, "adv"][i]), "images": count}
            for t, name, _, count in segments if name == "adv"
            for i, c in enumerate(concepts)]  # fmt: skip


def planted_check(deltas, targets, cav, target: int) -> dict:
    """cos(CAV, mean perturbation towards each target); `toward` when the
    planted target's cosine exceeds every other target's.

    Args:
      deltas: (R, C) GAP latent perturbations. targets: (R,) their targets.
      cav: (C,) unit concept vector. target: the planted target class.
    """
    cos = {}
    for t in np.unique(targets):
        mu = np.asarray(deltas, np.float64)[targets == t].mean(0)
        cos[int(t)] = float(_unit(mu) @ cav)
    others = [c for t, c in cos.items() if t != target]
    planted = cos.get(int(target))
    toward = planted is not None and bool(others) and planted > max(others)
    return {"cosine": cos, "planted": planted, "toward": toward}


def probe(st: AdversarialStudy, src, results: dict, valid, dis_arrays: dict, key):
    """TCAV and Net2Vec on clean vs adversarial images, and the planted check.

    Returns:
      (results, arrays): {"concepts", "concept", "target", "layers": {layer:
      {"cav_concepts", "tcav": [{"target", "concept", "clean", "adv",
      "images"}], "net2vec": [{"concept", "iou_clean", "iou_adv",
      "area_clean", "area_adv"}], "planted": {...}}}} and {"<layer>.cav"
      (K', C) unit CAVs of `cav_concepts`}.
    """
    q, names = st.probes, src.class_names
    size = int(src.images.shape[1])
    data = probe_data(st, size)
    rows = successful(src, results, valid)
    acts = layer_acts(src, data["images"], st.batch_size)
    clean = layer_acts(src, src.images, st.batch_size)
    adv = layer_acts(src, rows["x_adv"], st.batch_size) if len(rows["target"]) else None
    planted_t = [c for c, n in names.items() if n == q.target][0]
    out = {"concepts": list(synthaerial.CONCEPTS), "layers": {},
           "concept": q.concept, "target": q.target}  # fmt: skip
    arrays = {}
    for li, layer in enumerate(src.layers):
        kept, cav = _cavs(st, acts[layer].mean((1, 2)), data["present"])
        head = pipeline.layer_head_fn(src.model, src.variables, layer, size)
        kept_names = [synthaerial.CONCEPTS[k] for k in kept]
        tcav = _tcav(src, rows, clean[layer], adv[layer] if adv is not None else None,
                     head, cav, kept_names)  # fmt: skip
        cfg = probes.Net2VecConfig(objective="balanced_bce", optimizer="adamw",
                                   learning_rate=0.03, weight_decay=0.0,
                                   batch_size=min(32, len(data["images"])),
                                   epochs=q.epochs)  # fmt: skip
        probe_, _ = probes.fit_net2vec(acts[layer], data["masks"],
                                       jax.random.fold_in(key, li), config=cfg)  # fmt: skip
        n2v = []
        if adv is not None:
            img = np.unique(rows["image"])
            lc = np.asarray(net2vec.probe_logits(probe_, jnp.asarray(clean[layer][img]),
                                                 (size, size)))[:, 0]  # fmt: skip
            la = np.asarray(net2vec.probe_logits(probe_, jnp.asarray(adv[layer]),
                                                 (size, size)))[:, 0]  # fmt: skip
            m = src.concept_masks.transpose(1, 0, 2, 3)
            iou_c, area_c = set_iou(lc, m[:, img])
            iou_a, area_a = set_iou(la, m[:, rows["image"]])
            n2v = [{"concept": c, "iou_clean": _num(iou_c[i]), "iou_adv": _num(iou_a[i]),
                    "area_clean": float(area_c[i]), "area_adv": float(area_a[i])}
                   for i, c in enumerate(synthaerial.CONCEPTS)]  # fmt: skip
        planted = {"skipped": f"no CAV of {q.concept} (fewer than 2 scenes show it)"}
        if (
            synthaerial.CONCEPTS.index(q.concept) in kept
            and f"{layer}.delta" in dis_arrays
        ):
            i = list(kept).index(synthaerial.CONCEPTS.index(q.concept))
            p = planted_check(dis_arrays[f"{layer}.delta"], dis_arrays["target"],
                              cav[i], planted_t)  # fmt: skip
            planted = dict(p, cosine={names[t]: c for t, c in p["cosine"].items()})
        out["layers"][layer] = {"cav_concepts": kept_names, "tcav": tcav,
                                "net2vec": n2v, "planted": planted}  # fmt: skip
        arrays[f"{layer}.cav"] = cav.astype(np.float32)
    return out, arrays


def _num(x) -> float | None:
    return float(x) if np.isfinite(x) else None
