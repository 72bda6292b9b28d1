"""Per-instance LoCEs of SynthAerial scenes: instance table, targets, fitting.

One LoCE (Mikriukov et al. 2023, arXiv 2311.14435) per object instance: the
target of instance j of image i is its own mask `instance_mask[i] == j + 1`,
so the LoCE names one object (not the union of its class, as the COCO
pipeline does) and carries the object's planted sub-concept and background
in the store's index table.

`select_instances` builds the instance table from `synthaerial.generate`
records (minimum-area filter, optional seeded cap per concept),
`backbone_apply_fn` wraps a trained backbone for `features.extract`, and
`fit_instances` streams chunks of instances through
`store.fit_to_store` (resumable: finished chunks are skipped).
"""

from collections.abc import Callable, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from jaxcxai.concepts.loce import store
from jaxcxai.concepts.loce.objectives import LoceConfig
from jaxcxai.data import resample
from jaxcxai.data.synthaerial import BACKGROUNDS, CONCEPTS, SUBCONCEPTS

__all__ = [
    "TABLE_FIELDS",
    "backbone_apply_fn",
    "chunk_bounds",
    "fit_instances",
    "index_columns",
    "instance_targets",
    "select_instances",
]

# Instance table: row -> image row in the generated arrays, SynthAerial's
# global image index, instance id (value in instance_mask), concept id
# (1-based, CONCEPTS[c - 1]), sub-concept and background ids, area, bbox.
TABLE_FIELDS = (
    "row",
    "image_index",
    "instance",
    "concept",
    "sub_concept",
    "background",
    "area",
    "bbox",
)


def select_instances(
    data: Mapping[str, np.ndarray],
    *,
    min_area: int = 1,
    max_per_concept: int = 0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The object instances to fit, sorted by (image row, instance id).

    Args:
      data: output of `synthaerial.generate` (needs instance_mask, obj_class,
        obj_subconcept, obj_background, obj_bbox, num_objects, index).
      min_area: keep instances with at least this many mask pixels (after
        occlusion-free placement the mask is the whole object).
      max_per_concept: keep a seeded random subset of at most this many
        instances per concept (0: keep all).
      seed: seed of that subset.

    Returns:
      {field: (N, ...) array} for `TABLE_FIELDS`.
    """
    inst = np.asarray(data["instance_mask"])
    n_img, max_obj = data["obj_class"].shape
    # Per-image pixel counts of every instance id: (n_img, max_obj + 1).
    flat = inst.reshape(n_img, -1) + (max_obj + 1) * np.arange(n_img)[:, None]
    areas = np.bincount(flat.ravel(), minlength=n_img * (max_obj + 1))
    areas = areas.reshape(n_img, max_obj + 1)[:, 1:]
    rows, slots = np.nonzero(
        (np.arange(max_obj)[None, :] < data["num_objects"][:, None])
        & (areas >= max(int(min_area), 1))
    )
    concept = data["obj_class"][rows, slots].astype(np.int32)
    keep = np.ones(len(rows), bool)
    if max_per_concept:
        rng = np.random.default_rng(seed)
        for c in np.unique(concept):
            members = np.flatnonzero(concept == c)
            if len(members) > max_per_concept:
                drop = rng.permutation(members)[max_per_concept:]
                keep[drop] = False
    rows, slots, concept = rows[keep], slots[keep], concept[keep]
    return {
        "row": rows.astype(np.int64),
        "image_index": np.asarray(data["index"])[rows].astype(np.int64),
        "instance": (slots + 1).astype(np.int32),
        "concept": concept,
        "sub_concept": data["obj_subconcept"][rows, slots].astype(np.int32),
        "background": data["obj_background"][rows, slots].astype(np.int32),
        "area": areas[rows, slots].astype(np.int32),
        "bbox": data["obj_bbox"][rows, slots].astype(np.int32),
    }


def index_columns(table: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """The store's index (image id, concept, sub-concept, background) as names."""
    names = [CONCEPTS[c - 1] for c in table["concept"]]
    return {
        "image_id": [str(i) for i in table["image_index"]],
        "concept": names,
        "sub_concept": [SUBCONCEPTS[n][s] for n, s in zip(names, table["sub_concept"])],
        "background": [BACKGROUNDS[b] for b in table["background"]],
    }


def instance_targets(
    instance_mask: np.ndarray, rows, instances, grid: int
) -> tuple[np.ndarray, np.ndarray]:
    """Binary instance masks and their soft targets on the grid x grid grid.

    Args:
      instance_mask: (n_img, H, W) instance ids.
      rows, instances: (n,) image rows and instance ids.
      grid: target side; equal to H = W keeps the binary mask, otherwise
        `skimage`-style anti-aliased resampling gives soft targets (as the
        LoCE reference code resizes masks).

    Returns:
      (masks (n, H, W) bool, targets (n, grid, grid) float32).
    """
    masks = (
        np.asarray(instance_mask)[np.asarray(rows)]
        == np.asarray(instances)[:, None, None]
    )
    if masks.shape[1:] == (grid, grid):
        return masks, masks.astype(np.float32)
    soft = resample.resize(masks.astype(np.float32), (grid, grid), "skimage")
    return masks, np.asarray(soft, np.float32)


def backbone_apply_fn(model, variables, preprocess_fn: Callable) -> Callable:
    """`images -> (logits, {layer: act})` in eval mode, for `features.extract`."""

    def apply_fn(images):
        return model.apply(variables, preprocess_fn(images), train=False)

    return apply_fn


def chunk_bounds(n: int, chunk_size: int) -> np.ndarray:
    """Bounds of ceil(n / chunk_size) chunks whose sizes differ by at most one.

    Near-equal chunks pad to the same device multiple in `fit.fit_sharded`,
    so the fit compiles once instead of once more for a short last chunk.
    """
    n_chunks = max(1, -(-n // chunk_size))
    return (np.arange(n_chunks + 1) * n) // n_chunks


def _chunks(
    acts: Mapping[str, np.ndarray],
    instance_mask: np.ndarray,
    table: Mapping[str, np.ndarray],
    chunk_size: int,
    grid: int,
    start: int,
) -> Iterator[store.LoceChunk]:
    index = index_columns(table)
    bounds = chunk_bounds(len(table["row"]), chunk_size)
    for lo, hi in zip(bounds[start:-1], bounds[start + 1 :]):
        sl = slice(int(lo), int(hi))
        rows = table["row"][sl]
        masks, targets = instance_targets(
            instance_mask, rows, table["instance"][sl], grid
        )
        # Backbones return NHWC; LoCEs work on (C, h, w).
        chunk_acts = {
            name: np.ascontiguousarray(
                np.asarray(a[rows], np.float32).transpose(0, 3, 1, 2)
            )
            for name, a in acts.items()
        }
        yield store.LoceChunk(
            chunk_acts, targets, list(masks), {k: v[sl] for k, v in index.items()}
        )


def fit_instances(
    acts: Mapping[str, np.ndarray],
    instance_mask: np.ndarray,
    table: Mapping[str, np.ndarray],
    directory: str,
    *,
    config: LoceConfig = LoceConfig(),
    grid: int | None = None,
    chunk_size: int = 256,
    mesh=None,
    key=None,
    fingerprint: Mapping | None = None,
    progress: bool = True,
) -> store.LoceResults:
    """Fits one LoCE per instance and layer into a resumable store.

    Args:
      acts: {layer: (n_img, h, w, C)} activations of the generated images.
      instance_mask: (n_img, H, W) instance ids of the same images.
      table: `select_instances` output (rows in store order).
      directory: store directory (`store.fit_to_store`).
      config: `LoceConfig`.
      grid: target grid side (None: the image side H).
      chunk_size: at most this many instances per stored chunk (near-equal
        chunks, `chunk_bounds`).
      mesh: shard each chunk over this mesh (None: one device).
      key: PRNG key for random inits.
      fingerprint: what produced `acts` (e.g. {"backbone":
        `features.backbone_fingerprint(net)`}); the store records it with a
        digest of `table` ("instances"), the grid and the chunking, and
        refuses a rerun with any of them changed (`store.fit_to_store`).
      progress: show a tqdm bar over chunks.

    Returns:
      `LoceResults` with rows in table order.
    """
    n = len(table["row"])
    if n == 0:
        raise ValueError("no object instances passed the filters; nothing to fit")
    grid = int(grid or np.shape(instance_mask)[1])
    n_chunks = len(chunk_bounds(n, chunk_size)) - 1

    def chunks(start: int):
        stream = _chunks(acts, instance_mask, table, chunk_size, grid, start)
        return tqdm(
            stream,
            total=n_chunks,
            initial=start,
            unit="chunk",
            desc="LoCE fits",
            disable=not progress,
        )

    inputs = {"instances": dict(table), "grid": grid, "chunk_size": chunk_size}
    return store.fit_to_store(chunks, directory, config=config, mesh=mesh, key=key,
                              fingerprint={**inputs, **(fingerprint or {})})  # fmt: skip
