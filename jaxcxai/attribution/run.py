"""Running an explanation study: explain, score, plot, report.

`explain(study, workdir, net)` explains the trained backbone on held-out
SynthAerial items with every image method of the study (`methods`), scores
the maps (`scores`), runs the tabular part (`tabular_eval`), and writes the
study's files (`study`), figures (`plots`) and report (`report`).
`explain_images_study` is the image part alone.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from jaxcxai import parallel
from jaxcxai.attribution import methods, plots, report, scores, study, tabular_eval
from jaxcxai.attribution.study import ExplainStudy
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["check", "explain", "explain_images_study"]


def check(st: ExplainStudy) -> None:
    """Rejects unknown or unselected method names before anything runs.

    Raises:
      ValueError: naming the bad entries and the field they belong to.
    """
    bad = [n for n in st.methods.names if n not in methods.METHODS]
    if bad:
        raise ValueError(
            f"methods.names has unknown image methods {bad}; valid: {methods.METHODS}"
        )
    bad = [n for n in st.metrics.randomization_methods if n not in st.methods.names]
    if bad:
        raise ValueError(
            f"metrics.randomization_methods {bad} are not in methods.names "
            f"{list(st.methods.names)}"
        )
    tabular_eval.check(st.tabular)


def _score(name, maps, f, x, items, st, explain, keys, trained) -> tuple[dict, dict]:
    """Per-item scores of one method's maps: (results, arrays)."""
    m = st.metrics
    loc = scores.localisation(maps, items["mask"], m.pointing_tolerance)
    faith = scores.faithfulness(f, x, maps, items["target"], m.deletion_steps,
                                m.insertion_blur)  # fmt: skip
    res = {k: scores.summary(loc[k]) for k in ("relevance_mass", "pointing_game")}
    res |= {k: scores.summary(faith[k]) for k in ("deletion_auc", "insertion_auc")}
    arrays = {
        f"{name}.{k}": v for k, v in (loc | faith).items() if k != "mask_fraction"
    }
    if name in methods.SAMPLED:
        second = explain(name, keys[1])
        stab = scores.seed_stability(maps, second)
        res |= {f"seed_{k}": scores.summary(v) for k, v in stab.items()}
        arrays[f"{name}.key2"] = second
    if name in m.randomization_methods:
        rnd = scores.randomization(
            lambda p: explain(name, keys[0], p), trained, maps,
            m.randomization_layers, keys[2],
        )  # fmt: skip
        res["randomization"] = {
            layer: {"spearman": scores.summary(rnd["spearman"][i]),
                    "ssim": scores.summary(rnd["ssim"][i])}
            for i, layer in enumerate(m.randomization_layers)
        }  # fmt: skip
        arrays[f"{name}.randomized"] = rnd["maps"]
        arrays[f"{name}.randomization_spearman"] = rnd["spearman"]
        arrays[f"{name}.randomization_ssim"] = rnd["ssim"]
    by_concept = [
        float(np.nanmean(loc["relevance_mass"][items["concept"] == k]))
        if np.isfinite(loc["relevance_mass"][items["concept"] == k]).any()
        else None
        for k in range(len(st.data.concepts))
    ]
    res["relevance_mass_by_concept"] = dict(zip(st.data.concepts, by_concept))
    return res, arrays


def explain_images_study(st: ExplainStudy, net: TrainedBackbone) -> tuple[dict, dict]:
    """Explains and scores the image items of `st` with every method.

    Returns:
      (results, arrays): JSON-able results and the arrays of
      `study.ATTRIBUTIONS` (items, maps and per-item scores by method).
    """
    check(st)
    size = int(st.data.image_size or net.image_size)
    items = study.build_items(st.data, size, net.outputs)
    x = items["image"].astype(np.float32) / 255.0
    mesh = parallel.make_mesh() if st.sharded else None
    seg = (methods.segments_for(items["image"], st.methods)
           if "lime" in st.methods.names else None)  # fmt: skip
    keys = jax.random.split(jax.random.key(st.seed), 4)
    f = methods.image_model(net)
    trained, programs = net.variables["params"], {}

    def maps_of(name, key, params=None):
        if name not in programs:
            programs[name] = methods.method_program(
                name, net, items["target"], st.methods, segments=seg, mesh=mesh
            )
        return np.asarray(programs[name](trained if params is None else params, key, x))

    logits = np.asarray(jax.jit(f)(x)[0], np.float64)
    presence = 1 / (1 + np.exp(-logits[np.arange(len(x)), items["target"]]))
    arrays = dict(items, presence=presence.astype(np.float32))
    if seg is not None:
        arrays["segments"] = seg
    per_method = {}
    for name in list(st.methods.names) + [methods.CONTROL]:
        t0 = time.perf_counter()
        maps = maps_of(name, keys[3] if name == methods.CONTROL else keys[0])
        seconds = time.perf_counter() - t0
        res, extra = _score(name, maps, f, x, items, st, maps_of, keys, trained)
        per_method[name] = dict(res, explain_seconds=seconds,
                                total_seconds=time.perf_counter() - t0)  # fmt: skip
        arrays[name] = maps
        arrays.update(extra)
    # Paired per item: the items' own difficulty cancels out.
    for name, res in per_method.items():
        for k in ("deletion_auc", "insertion_auc"):
            diff = arrays[f"{name}.{k}"] - arrays[f"{methods.CONTROL}.{k}"]
            res[f"{k}_vs_control"] = scores.summary(diff)
    concepts = list(st.data.concepts)
    counts = np.bincount(items["concept"], minlength=len(concepts))
    fraction = items["mask"].reshape(len(x), -1).mean(1)
    results = {
        "image_size": size, "num_items": len(x), "concepts": concepts,
        "items_per_concept": dict(zip(concepts, counts.tolist())),
        "presence_probability": {
            c: float(presence[items["concept"] == k].mean()) if counts[k] else None
            for k, c in enumerate(concepts)
        },
        "mask_fraction": scores.summary(fraction),
        "mask_fraction_by_concept": {
            c: float(fraction[items["concept"] == k].mean()) if counts[k] else None
            for k, c in enumerate(concepts)
        },
        "methods": per_method, "control": methods.CONTROL,
        "randomization_layers": list(st.metrics.randomization_layers),
        "pointing_tolerance": st.metrics.pointing_tolerance,
        "deletion_steps": st.metrics.deletion_steps,
        "insertion_blur": st.metrics.insertion_blur,
        "data_seed": st.data.seed, "grad_cam_layer": st.methods.layer,
    }  # fmt: skip
    return results, arrays


def explain(st: ExplainStudy, workdir: str, net: TrainedBackbone) -> dict:
    """Runs the whole study into `workdir` (files: see `study`).

    Returns:
      {"markdown" (the report without its title), "figures" (PNG names in
      workdir), "results" (what `results.json` holds)}.
    """
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    image, arrays = explain_images_study(st, net)
    t1 = time.perf_counter()
    table, tab_arrays = tabular_eval.evaluate_tabular(st.tabular, st.seed)
    t2 = time.perf_counter()
    study.save_npz(os.path.join(workdir, study.ATTRIBUTIONS), arrays)
    study.save_npz(os.path.join(workdir, study.TABULAR), tab_arrays)
    results = {"backbone": st.backbone, "seed": st.seed, "image": image,
               "tabular": table}  # fmt: skip
    figures = plots.image_figures(image, arrays, st.num_examples, workdir)
    figures += plots.tabular_figures(table, workdir)
    md = report.markdown(results)
    results["seconds"] = {"image": t1 - t0, "tabular": t2 - t1,
                          "figures": time.perf_counter() - t2}  # fmt: skip
    write_json_atomic(os.path.join(workdir, study.RESULTS), results)
    text = (
        "# Attributions\n\n" + md + "\n\n" + "\n".join(f"![{f}]({f})" for f in figures)
    )
    write_text_atomic(os.path.join(workdir, study.REPORT), text + "\n")
    return {"markdown": md, "figures": figures, "results": results}
