"""Fits Net2Vec probes and TCAV CAVs to the layers of a trained backbone.

    python -m train.probes --config configs/probes.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Builds a training and a held-out split with per-concept masks (SynthAerial
scenes of unseen seeds, or COCO / VOC annotations), caches the layers'
activations (`DIR/features/{train,test}`), fits K concepts x L layers x R runs
of Net2Vec probes in bulk and, per layer, K x R concept-vs-random CAVs plus
R - 1 random-vs-random CAVs on whole images. Writes `DIR/data.npz` (held-out
masks and images), `DIR/net2vec.npz`, `DIR/tcav.npz` and `DIR/probes.json`;
`eval.concepts` evaluates them.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import numpy as np

from configs import cli
from jaxcxai import features, hostmem, parallel
from jaxcxai.concepts import bulk, net2vec, probe_pipeline, tcav
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import write_json_atomic

DATA, NET2VEC, TCAV, META = "data.npz", "net2vec.npz", "tcav.npz", "probes.json"
SOURCES = ("synthaerial", "coco", "voc")


def net2vec_config(config) -> bulk.Net2VecConfig:
    """The library `Net2VecConfig` of the config's `net2vec` section."""
    c = config.net2vec
    return bulk.Net2VecConfig(
        objective=c.objective,
        pos_weight=c.pos_weight or None,
        optimizer=c.optimizer,
        learning_rate=c.lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        batch_size=c.batch_size,
        epochs=c.epochs,
        init=c.init,
    )


def load_backbone(path: str) -> dict:
    """A `train.classifier` workdir as {model, variables, apply_fn, size, outputs}.

    `outputs` names the logits: the scenes, then `has_<concept>` for the
    object-presence logits of a SynthAerial backbone (else the indices).
    """
    from train.classifier import load_trained, preprocess_fn

    model, variables, bconfig = load_trained(path)
    pre = preprocess_fn(bconfig.model.name)  # the same as in training

    def apply_fn(images):
        return model.apply(variables, pre(images), train=False)

    if bconfig.data.name == "synthaerial":
        outputs = synthaerial.SCENES + tuple(f"has_{c}" for c in synthaerial.CONCEPTS)
        size = int(bconfig.data.image_size)
    else:
        outputs, size = tuple(str(i) for i in range(10)), 8
    return dict(model=model, variables=variables, apply_fn=apply_fn, size=size,
                outputs=outputs, config=bconfig)  # fmt: skip


def image_size(config, backbone: dict) -> int:
    return int(config.data.image_size or backbone["size"])


def _split(data: dict, test_fraction: float, seed: int):
    n = len(data["image"])
    if n < 2:
        raise ValueError(f"need at least 2 annotated images for a split, got {n}")
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    pick = lambda idx: {k: v[np.sort(idx)] for k, v in data.items()}  # noqa: E731
    return pick(perm[n_test:]), pick(perm[:n_test])


def build_data(config, size: int) -> tuple[dict, dict]:
    """(train, test) splits: {"image" (N, S, S, 3) uint8, "masks" (N, K, S, S)}.

    SynthAerial splits also carry "scene" (N,).
    """
    d, concepts = config.data, list(config.concepts)
    if d.source == "synthaerial":
        unknown = [c for c in concepts if c not in synthaerial.CONCEPTS]
        if unknown:
            raise ValueError(
                f"unknown SynthAerial concepts {unknown}; have {synthaerial.CONCEPTS}"
            )
        ids = [synthaerial.CONCEPTS.index(c) + 1 for c in concepts]

        def split(num, seed):
            g = synthaerial.generate(num, size=size, seed=seed,
                                     boat_on_water_p=d.boat_on_water_p)  # fmt: skip
            masks = probe_pipeline.concept_masks(g["class_mask"], ids)
            return {"image": g["image"], "masks": masks, "scene": g["scene"]}

        return split(d.num_train, d.seed), split(d.num_test, d.test_seed)
    if d.source == "coco":
        data = probe_pipeline.coco_probe_data(
            d.coco.annotations, d.coco.images, concepts, size,
            max_per_concept=d.coco.max_per_concept or None,
            variant=d.coco.mask_variant,
        )  # fmt: skip
    elif d.source == "voc":
        data = probe_pipeline.voc_probe_data(
            d.voc.root, concepts, size, split=d.voc.split
        )
    else:
        raise ValueError(f"unknown data.source {d.source!r}; use one of {SOURCES}")
    return _split(data, d.test_fraction, config.seed)


def tcav_targets(config, outputs) -> dict[str, tuple[str, int]]:
    """{concept: (target name, logit index)} from "concept:target" entries."""
    out = {}
    for entry in config.tcav.targets:
        concept, sep, target = entry.partition(":")
        if not sep:
            raise ValueError(f"tcav.targets entry {entry!r} is not 'concept:target'")
        if concept not in config.concepts:
            continue  # a concept this run does not probe
        if target in outputs:
            out[concept] = (target, outputs.index(target))
        elif target.isdigit() and int(target) < len(outputs):
            out[concept] = (target, int(target))
        else:
            raise ValueError(
                f"TCAV target {target!r} of {concept!r} is not an output of the "
                f"backbone; have {list(outputs)}"
            )
    return out


def class_images(config, target: str, size: int, test_images) -> np.ndarray:
    """Images of a TCAV target class: generated scenes of that class on
    SynthAerial, otherwise all held-out images."""
    if config.data.source == "synthaerial" and target in synthaerial.SCENES:
        g = synthaerial.generate(
            config.tcav.num_class_images, size=size,
            seed=config.tcav.class_seed + synthaerial.SCENES.index(target),
            boat_on_water_p=config.data.boat_on_water_p, scenes=(target,),
        )  # fmt: skip
        return g["image"]
    return np.asarray(test_images)


def extract(apply_fn, images, config, cache_dir=None, progress=True):
    """Activations of `config.layers` (float16 cache, or float32 in memory)."""
    return features.extract(
        apply_fn, images, list(config.layers), batch_size=config.batch_size,
        mesh=parallel.make_mesh(), dtype=np.float16 if cache_dir else np.float32,
        pool=False, cache_dir=cache_dir, progress=progress,
    )  # fmt: skip


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` written to a temporary name, then renamed."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; run train.probes first")
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def fit_net2vec(config, cache, masks) -> dict[str, np.ndarray]:
    """{f"{layer}.w" (K, R, C), f"{layer}.b" (K, R), f"{layer}.thr" (C,)}."""
    layers = list(config.layers)
    q = config.net2vec.threshold_quantile
    thr = {
        name: net2vec.netdissect_thresholds(cache.iter_chunks(name), q)
        if q
        else np.full(cache.shape(name)[-1], -np.inf, np.float32)
        for name in layers
    }
    probes = bulk.fit_net2vec_layers(
        bulk.cache_source(cache, masks, shuffle_seed=config.seed),
        layers,
        {name: cache.shape(name) for name in layers},
        jax.random.key(config.seed),
        thresholds=thr if q else None,
        config=net2vec_config(config),
        num_runs=config.net2vec.runs,
        alpha=net2vec.foreground_alpha(masks),
        mesh=parallel.make_mesh(),
    )
    out = {}
    for name in layers:
        out[f"{name}.w"] = np.asarray(probes[name].w)
        out[f"{name}.b"] = np.asarray(probes[name].b)
        out[f"{name}.thr"] = thr[name]
    return out


def fit_tcav(config, cache, masks) -> dict[str, np.ndarray]:
    """Concept and random CAVs per layer on whole training images.

    Returns:
      {"concepts" (K',) kept concept columns, "concept_rows", "random_rows",
      and per layer f"{layer}.direction" (K', R, d), ".norm", ".bias" (K', R),
      ".random_direction" (R - 1, d)}; empty when fewer than 2 concepts'
      images or too few random sets exist.
    """
    sets = probe_pipeline.sample_sets(
        masks.reshape(masks.shape[:2] + (-1,)).any(-1),
        config.tcav.num_concept_images,
        config.tcav.num_random_images,
        config.tcav.num_random,
        config.seed,
    )
    if config.tcav.num_random < 3 or len(sets["concepts"]) == 0:
        logging.warning("TCAV skipped: need >= 3 random sets and a concept set")
        return {}
    out = dict(sets)
    for name in config.layers:
        acts = np.asarray(cache[name], np.float32)
        pos = tcav.flatten_acts(acts[sets["concept_rows"]], config.tcav.pool)
        neg = tcav.flatten_acts(acts[sets["random_rows"]], config.tcav.pool)
        kw = dict(method=config.tcav.method, alpha=config.tcav.alpha)
        cavs = tcav.fit_cavs(pos, neg, **kw)
        rand = tcav.fit_cavs(neg[:1], neg[1:], **kw)
        out[f"{name}.direction"] = np.asarray(cavs.direction)
        out[f"{name}.norm"] = np.linalg.norm(np.asarray(cavs.weight), axis=-1)
        out[f"{name}.bias"] = np.asarray(cavs.bias)
        out[f"{name}.random_direction"] = np.asarray(rand.direction[0])
    return out


def fit(config, workdir: str, backbone: str | None = None, progress=True) -> dict:
    """Builds the data, caches activations, fits Net2Vec probes and CAVs.

    Args:
      config: a `configs/probes.py` config.
      workdir: output directory.
      backbone: backbone workdir (default `config.backbone`).
      progress: tqdm bars.

    Returns:
      The run summary also written to `probes.json`.
    """
    os.makedirs(workdir, exist_ok=True)
    meta_path = os.path.join(workdir, META)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            logging.info("probes in %s are complete; nothing to fit", workdir)
            return json.load(f)
    t0 = time.perf_counter()
    net = load_backbone(backbone or config.backbone)
    size = image_size(config, net)
    targets = tcav_targets(config, net["outputs"])
    train, test = build_data(config, size)
    save_npz(os.path.join(workdir, DATA),
             {"test_image": test["image"], "test_masks": test["masks"]})  # fmt: skip
    cache = {
        split: extract(net["apply_fn"], data["image"], config,
                       os.path.join(workdir, "features", split), progress)
        for split, data in (("train", train), ("test", test))
    }  # fmt: skip
    t1 = time.perf_counter()
    save_npz(os.path.join(workdir, NET2VEC),
             fit_net2vec(config, cache["train"], train["masks"]))  # fmt: skip
    t2 = time.perf_counter()
    save_npz(os.path.join(workdir, TCAV),
             fit_tcav(config, cache["train"], train["masks"]))  # fmt: skip
    t3 = time.perf_counter()
    present = train["masks"].reshape(train["masks"].shape[:2] + (-1,)).any(-1)
    meta = {
        "concepts": list(config.concepts),
        "layers": list(config.layers),
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


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hostmem.keep_freed_memory()
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    cli.save_config(args.config, args.workdir)
    meta = fit(args.config, args.workdir)
    print(json.dumps(meta["seconds"]))


if __name__ == "__main__":
    main()
