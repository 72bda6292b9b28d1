"""Fits one LoCE per SynthAerial object instance and layer of a trained backbone.

    python -m train.loce --config configs/loce.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Generates `config.data.num_images` scenes (a seed the backbone never saw),
keeps the object instances with at least `min_area` pixels (a seeded subset of
at most `max_per_concept` per concept), extracts the configured layers and
fits the LoCEs chunk by chunk into `DIR/store/` (a re-run resumes after the
last finished chunk). Writes `DIR/config.json`, `DIR/instances.npz` (the
instance table, rows in store order) and the store; `eval.loce` analyses it.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np

from configs import cli
from jaxcxai import features, hostmem, parallel
from jaxcxai.concepts import loce_pipeline, loce_store
from jaxcxai.concepts.loce_objectives import LoceConfig
from jaxcxai.data import synthaerial

STORE = "store"
INSTANCES = "instances.npz"


def loce_config(config) -> LoceConfig:
    """The library `LoceConfig` of the config's `loce` section."""
    c = config.loce
    return LoceConfig(
        objective=c.objective,
        steps=c.steps,
        lr=c.lr,
        weight_decay=c.weight_decay,
        init=c.init,
        upsample=c.upsample,
        interp=c.interp,
    )


def load_backbone(path: str):
    """Loads a `train.classifier` workdir as an extraction function.

    Returns:
      (apply_fn images -> (logits, {layer: NHWC act}), training image size,
      backbone config).
    """
    from train.classifier import load_trained, preprocess_fn

    model, variables, bconfig = load_trained(path)
    pre = preprocess_fn(bconfig.model.name)  # the same as in training
    apply_fn = loce_pipeline.backbone_apply_fn(model, variables, pre)
    return apply_fn, int(bconfig.data.image_size), bconfig


def image_size(config, backbone_size: int) -> int:
    return int(config.data.image_size or backbone_size)


def generate(config, size: int, held_out: bool = False) -> dict:
    """The fitting scenes, or the held-out ones (`eval_seed`) for segmentation."""
    d = config.data
    num, seed = (d.num_eval_images, d.eval_seed) if held_out else (d.num_images, d.seed)
    return synthaerial.generate(
        num, size=size, seed=seed, boat_on_water_p=d.boat_on_water_p
    )


def extract(apply_fn, images, config, progress: bool = True) -> dict:
    """{layer: (N, h, w, C) float32} activations of `config.layers`."""
    return features.extract(
        apply_fn,
        images,
        list(config.layers),
        batch_size=config.batch_size,
        mesh=parallel.make_mesh(),
        dtype=np.float32,
        pool=False,
        progress=progress,
    )


def _save_table(path: str, table: dict) -> None:
    if os.path.exists(path):
        with np.load(path) as old:
            same = set(old.files) == set(table) and all(
                np.array_equal(old[k], table[k]) for k in table
            )
        if not same:
            raise ValueError(
                f"{path} holds another instance table (config changed?); "
                "use a new workdir"
            )
        return
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **table)
    os.replace(tmp, path)


def load_table(workdir: str) -> dict[str, np.ndarray]:
    path = os.path.join(workdir, INSTANCES)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no instance table at {path}; run train.loce first")
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def fit(
    config, workdir: str, backbone: str | None = None, progress: bool = True
) -> loce_store.LoceResults:
    """Generates scenes, extracts activations and fits the per-instance LoCEs.

    Args:
      config: a `configs/loce.py` config.
      workdir: output directory (`instances.npz`, `store/`).
      backbone: backbone workdir (default `config.backbone`).
      progress: tqdm bars.

    Returns:
      The stored `LoceResults` (rows as in `instances.npz`).
    """
    os.makedirs(workdir, exist_ok=True)
    store = os.path.join(workdir, STORE)
    if os.path.exists(os.path.join(store, "results.npz")) and os.path.exists(
        os.path.join(workdir, INSTANCES)
    ):
        logging.info("LoCE store %s is complete; nothing to fit", store)
        return loce_store.load_results(store)
    apply_fn, backbone_size, _ = load_backbone(backbone or config.backbone)
    size = image_size(config, backbone_size)
    data = generate(config, size)
    table = loce_pipeline.select_instances(
        data,
        min_area=config.data.min_area,
        max_per_concept=config.data.max_per_concept,
        seed=config.seed,
    )
    _save_table(os.path.join(workdir, INSTANCES), table)
    counts = np.bincount(table["concept"], minlength=len(synthaerial.CONCEPTS) + 1)
    logging.info(
        "%d instances: %s",
        len(table["row"]),
        ", ".join(f"{n} {c}" for c, n in zip(synthaerial.CONCEPTS, counts[1:])),
    )
    acts = extract(apply_fn, data["image"], config, progress)
    grid = config.loce.grid or size
    return loce_pipeline.fit_instances(
        acts,
        data["instance_mask"],
        table,
        store,
        config=loce_config(config),
        grid=grid,
        chunk_size=config.loce.chunk_size,
        mesh=parallel.make_mesh(),
        key=jax.random.key(config.seed),
        progress=progress,
    )


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hostmem.keep_freed_memory()
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    cli.save_config(args.config, args.workdir)
    results = fit(args.config, args.workdir)
    print(f"{results.meta['n']} LoCEs x {len(results.layers)} layers in {args.workdir}")


if __name__ == "__main__":
    main()
