"""Scoring a discovery study's dictionaries against SynthAerial's planted truth.

Per layer, method and seed (all on the study's N scenes; the masks are never
used by the fits):

* reconstruction R^2 of the activation rows (`quality.r2`), dead components
  and mean L0 of the codes;
* seed stability: mean Hungarian-matched cosine over all seed pairs
  (`matching.stability`);
* localization: each component's presence map (its codes reshaped to
  (N, h, w)) against each concept mask by NetDissect's dataset IoU (Bau et
  al. 2017), thresholded by the study's rule (`area` by default: per
  concept, as many pixels as it covers; see `localization_iou`); a concept
  is recovered by a seed's dictionary when some component reaches
  `iou_threshold`;
* supervised match: cosine of the components with the concepts'
  mean-difference CAVs of the same activations (`mean_difference_vectors`),
  best component per concept (`matching.match_to_reference`);
* fidelity (ICE's "explanation fidelity", reconstructed here as scene
  agreement): the backbone's scene prediction when the layer's activation is
  replaced by the dictionary's reconstruction, through
  `jaxcxai.attribution.layer_tap` (any backbone, no hand-written head).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution import layer_tap
from jaxcxai.concepts.discovery import matching, quality
from jaxcxai.concepts.discovery.common import check_finite
from jaxcxai.concepts.discovery.ice import presence_maps
from jaxcxai.concepts.discovery.study import DiscoveryStudy, concept_names
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "coverage",
    "evaluate",
    "localization_iou",
    "mean_difference_vectors",
    "reconstruction",
    "scene_fidelity",
]


def coverage(masks, spatial):
    """Fraction (N, h, w, c) of each layer cell covered by each mask.

    Args:
      masks: (N, H, W, c) boolean masks; H, W multiples of h, w.
      spatial: (h, w) of the layer.
    """
    m = np.asarray(masks, np.float32)
    n, big, wide, c = m.shape
    h, w = spatial
    if big % h or wide % w:
        raise ValueError(f"mask size {(big, wide)} is not a multiple of {(h, w)}")
    return m.reshape(n, h, big // h, w, wide // w, c).mean(axis=(2, 4))


def mean_difference_vectors(acts, cover):
    """Mean-difference CAVs (c, C) of every concept at a spatial layer.

    The coverage-weighted mean activation of the cells inside the concept
    minus that of the cells outside it (weights cover and 1 - cover), so
    objects smaller than a cell still get a vector. A concept absent from
    every cell gets a zero vector (matched cosine 0).

    Args:
      acts: (N, h, w, C) activations.
      cover: (N, h, w, c) coverage fractions (`coverage`).
    """
    if np.ndim(acts) != 4 or np.shape(cover)[:3] != np.shape(acts)[:3]:
        raise ValueError(
            f"acts (N, h, w, C) and cover (N, h, w, c) disagree: "
            f"{np.shape(acts)}, {np.shape(cover)}"
        )
    check_finite(acts, "acts")
    a = np.asarray(acts, np.float64).reshape(-1, acts.shape[-1])
    w = np.asarray(cover, np.float64).reshape(-1, cover.shape[-1])
    inside = w.sum(0)
    outside = a.shape[0] - inside
    sum_in = w.T @ a  # (c, C); the outside sum is the total minus it
    mean_in = sum_in / np.where(inside > 0, inside, 1.0)[:, None]
    mean_out = (a.sum(0) - sum_in) / np.where(outside > 0, outside, 1.0)[:, None]
    return np.where((inside > 0)[:, None], mean_in - mean_out, 0.0)


def reconstruction(codes, components, mean):
    """Activation rows rebuilt from a dictionary: codes @ components + mean."""
    return np.asarray(codes) @ np.asarray(components) + np.asarray(mean)[None]


def _tapped_logits(net, layer, shape, dtype, num_classes):
    tapped, _ = layer_tap(net.apply, jax.ShapeDtypeStruct(shape, dtype), layer)
    return jax.jit(lambda x, delta: tapped(x, delta)[0][0][:, :num_classes])


def scene_fidelity(net: TrainedBackbone, images, acts, recs, labels, layer,
                   batch_size=64):  # fmt: skip
    """Scene agreement of the backbone with a layer replaced by reconstructions.

    (Reconstruction of ICE's fidelity, Zhang et al. 2021: the share of
    images whose predicted scene is unchanged; see `ice.ice_fidelity`.)

    Args:
      net: the backbone; the scene block is its first `meta.num_classes`
        outputs.
      images: (N, S, S, 3) uint8.
      acts: (N, h, w, C) the layer's original activations.
      recs: iterable of (N, h, w, C) (or (N h w, C)) reconstructions.
      labels: (N,) true scenes.

    Returns:
      {"accuracy_original", "agreement" [per rec], "accuracy_reconstructed"
      [per rec], "logit_rel_error" [per rec]}.
    """
    images = np.asarray(images)
    n = images.shape[0]
    b = min(batch_size, n)
    run = _tapped_logits(net, layer, (b,) + images.shape[1:], images.dtype,
                         int(net.meta.num_classes))  # fmt: skip
    pad = -n % b
    imgs = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])

    def logits(delta):
        delta = np.concatenate([delta, np.zeros((pad,) + delta.shape[1:], delta.dtype)])
        out = [np.asarray(run(imgs[i : i + b], delta[i : i + b]))
               for i in range(0, n + pad, b)]  # fmt: skip
        return np.concatenate(out)[:n].astype(np.float64)

    a = np.asarray(acts, np.float32)
    z = logits(np.zeros_like(a))
    pred, y = z.argmax(-1), np.asarray(labels)
    out = {"accuracy_original": float(np.mean(pred == y)), "agreement": [],
           "accuracy_reconstructed": [], "logit_rel_error": []}  # fmt: skip
    for rec in recs:
        z_rec = logits(np.asarray(rec, np.float32).reshape(a.shape) - a)
        out["agreement"].append(float(np.mean(z_rec.argmax(-1) == pred)))
        out["accuracy_reconstructed"].append(float(np.mean(z_rec.argmax(-1) == y)))
        out["logit_rel_error"].append(
            float(np.linalg.norm(z_rec - z) / max(np.linalg.norm(z), 1e-30))
        )
    return out


def localization_iou(presence, masks, *, threshold="area", top_quantile=0.005,
                     batch_size=32):  # fmt: skip
    """`quality.localization_iou` (k, c), with `area` thresholds on the host.

    Same definition; the per-(component, concept) quantiles of the upsampled
    maps are taken by NumPy's selection (linear interpolation, as
    `jnp.quantile`) instead of an XLA sort, which on a CPU is 20x slower for
    the N H W values of a layer. The intersection counts are the library's.

    Args:
      presence: (N, h, w, k) presence maps.
      masks: (N, H, W, c) boolean concept masks.
      threshold: "area" or "quantile" (`top_quantile`, NetDissect).
    """
    if threshold != "area":
        return quality.localization_iou(presence, masks, top_quantile=top_quantile)
    p = jnp.asarray(presence, jnp.float32)
    m = jnp.asarray(masks, bool)
    if p.ndim != 4 or m.ndim != 4 or p.shape[0] != m.shape[0]:
        raise ValueError(
            "presence (N, h, w, k) and masks (N, H, W, c) disagree: "
            f"{p.shape}, {m.shape}"
        )
    check_finite(p, "presence")
    up = np.asarray(quality.upsample_presence(p, m.shape[1:3])).reshape(-1, p.shape[-1])
    counts = np.asarray(masks, bool).sum(axis=(0, 1, 2)).astype(np.float64)
    area = counts / (up.shape[0])
    thr = np.quantile(up, 1.0 - area, axis=0).T.astype(np.float32)  # (k, c)
    inter, pred = quality._counts(p, m, jnp.asarray(thr), min(batch_size, p.shape[0]))
    inter, pred = np.asarray(inter, np.float64), np.asarray(pred, np.float64)
    union = pred + counts[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _iou(st: DiscoveryStudy, presence, masks):
    q = st.quality
    return localization_iou(presence, masks, threshold=q.threshold,
                            top_quantile=q.top_quantile)  # fmt: skip


def evaluate_dictionary(st, fac, acts, data, cavs, names) -> dict:
    """Every score of one (layer, method): seeds x (R^2, IoU, ...)."""
    spatial = acts.shape[:3]
    thr = st.quality.iou_threshold
    out = {"k": int(fac.components.shape[1]), "r2": [], "dead": [], "mean_l0": [],
           "best_iou": [], "recoveries": {}}  # fmt: skip
    for s in range(fac.components.shape[0]):
        codes, comps, mean = fac.codes[s], fac.components[s], fac.mean[s]
        out["r2"].append(quality.r2(acts, codes, comps, mean))
        out["dead"].append(int(quality.dead_codes(codes).sum()))
        out["mean_l0"].append(quality.sparsity(codes)["mean_l0"])
        iou = _iou(st, presence_maps(codes, spatial), data["masks"])
        out["best_iou"].append(iou.max(axis=0).tolist())
        if s == 0:
            out["iou_seed0"] = iou.tolist()
            out["best_concept_seed0"] = quality.best_concepts(iou, names)
            ref = matching.match_to_reference(comps, cavs, names)
            out["cav_match_seed0"] = ref
            present = [c for c in names if np.any(cavs[names.index(c)])]
            out["cav_best_cos_mean"] = (
                float(np.mean([ref[c]["best_cos"] for c in present]))
                if present else None
            )  # fmt: skip
    best = np.asarray(out["best_iou"])  # (S, c)
    for j, c in enumerate(names):
        hits = int(np.sum(best[:, j] >= thr))
        if hits:
            out["recoveries"][c] = {"seeds": hits, "mean_iou": float(best[:, j].mean())}
    _, stats = matching.stability(fac.components)
    out["stability"] = stats
    out["r2_mean"] = float(np.mean(out["r2"]))
    return out


def evaluate(st: DiscoveryStudy, fitted: dict, net: TrainedBackbone) -> dict:
    """All scores of a fitted study (`run.fit`'s output); JSON-able."""
    data, acts, dicts = fitted["data"], fitted["acts"], fitted["dictionaries"]
    names = concept_names(st)
    masks = data["masks"]
    results = {
        "layers": list(st.layers), "methods": list(st.methods), "concepts": names,
        "num_images": int(masks.shape[0]), "image_size": int(masks.shape[1]),
        "num_seeds": st.num_seeds, "iou_threshold": st.quality.iou_threshold,
        "threshold_rule": st.quality.threshold,
        "top_quantile": st.quality.top_quantile,
        "concept_images": dict(zip(names, masks.any(axis=(1, 2)).sum(0).tolist())),
        "concept_area": dict(zip(names, masks.mean(axis=(0, 1, 2)).tolist())),
        "layer_shapes": {n: list(acts[n].shape[1:]) for n in st.layers},
        "sae_info": fitted["sae_info"], "dictionaries": {},
    }  # fmt: skip
    for name in st.layers:
        a = acts[name]
        cavs = mean_difference_vectors(a, coverage(masks, a.shape[1:3]))
        by_method = {
            method: evaluate_dictionary(st, fac, a, data, cavs, names)
            for method, fac in dicts[name].items()
        }
        # Built one at a time (a generator): each is as big as the layer.
        recs = (
            reconstruction(fac.codes[s], fac.components[s], fac.mean[s])
            for fac in dicts[name].values()
            for s in range(st.num_seeds)
        )
        # One compiled tapped network per layer serves every method and seed.
        fid = scene_fidelity(net, data["image"], a, recs, data["scene"], name,
                             st.batch_size)  # fmt: skip
        for i, r in enumerate(by_method.values()):
            part = slice(i * st.num_seeds, (i + 1) * st.num_seeds)
            r["fidelity"] = {key: v if key == "accuracy_original" else v[part]
                             for key, v in fid.items()}  # fmt: skip
        results["dictionaries"][name] = by_method
    return results
