"""Training batches of the hashing trainers, built on the host or on device.

A batch is a set of rows `pos` of the training part (plus, when every
epoch draws a fresh caption, the caption index `off` of each row). The
same `take_batch` builds it from host NumPy arrays or, inside the jitted
step, from arrays resident on the devices: DUCH-sized feature sets (UCM:
1,050 x (2 x 512 + 2 x 5 x 768) floats, 35 MB; RSICD about 300 MB) fit on
any accelerator, and gathering there avoids copying every batch from the
host (6 of 143 ms per UCM epoch on a 2-core CPU). `epochs.jit_step` uses it
on one-device meshes; with several fake CPU devices, the gather inside the
step made XLA:CPU's in-process collectives deadlock in the test suite
(devices entering two collectives in different orders), so batches are
sharded from the host there.

Part arrays (as train/hashing.py builds them): 'img', 'img_aug' (M, Di);
'txt', 'txt_aug' (M, Dt) with one caption per image, else 'txt_all',
'txt_aug_all' (M, C, Dt); 'buffer_idx' (M,) rows of the code buffers;
'class_ids' (M,) for CHNR's meta phase.
"""

import dataclasses

import jax
import numpy as np

from jaxcxai import parallel

__all__ = [
    "BatchLayout",
    "epoch_batches",
    "make_fed_step",
    "place_batch",
    "resident_arrays",
    "take_batch",
]


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """Which part arrays a batch takes.

    Attributes:
      one_caption: captions are fixed per image ('txt'/'txt_aug'); else
        'txt_all'/'txt_aug_all' indexed by the batch's `off`.
      with_txt_aug: include 'txt_aug' (False with the txt2_is_txt1 quirk).
      with_labels: include 'labels' (CHNR's meta phase).
    """

    one_caption: bool = True
    with_txt_aug: bool = False
    with_labels: bool = False

    def keys(self) -> tuple[str, ...]:
        """The part arrays a batch reads."""
        txt = ("txt", "txt_aug") if self.one_caption else ("txt_all", "txt_aug_all")
        keys = ("buffer_idx", "img", "img_aug", txt[0])
        keys += (txt[1],) if self.with_txt_aug else ()
        return keys + (("class_ids",) if self.with_labels else ())


def take_batch(part: dict, pos, off, layout: BatchLayout) -> dict:
    """The batch of rows `pos` (NumPy or jax arrays alike).

    Args:
      part: the part arrays (see the module docstring).
      pos: (N,) int row indices.
      off: (N,) int caption index per row, or None with `one_caption`.
      layout: what the batch holds.

    Returns:
      dict with 'idx' (N,) int32 code-buffer rows, 'img', 'img_aug', 'txt'
      and as configured 'txt_aug' and 'labels' (N,) int32.
    """
    b = {
        "idx": part["buffer_idx"][pos].astype(np.int32),
        "img": part["img"][pos],
        "img_aug": part["img_aug"][pos],
    }
    if layout.one_caption:
        b["txt"] = part["txt"][pos]
        if layout.with_txt_aug:
            b["txt_aug"] = part["txt_aug"][pos]
    else:
        if off is None:
            raise ValueError("a batch of a part with several captions needs `off`")
        b["txt"] = part["txt_all"][pos, off]
        if layout.with_txt_aug:
            b["txt_aug"] = part["txt_aug_all"][pos, off]
    if layout.with_labels:
        b["labels"] = part["class_ids"][pos].astype(np.int32)
    return b


def resident_arrays(part: dict, layout: BatchLayout, mesh) -> dict:
    """The part arrays a batch reads, replicated on every device of `mesh`
    (each host passes its full copy)."""
    return parallel.replicate({k: np.asarray(part[k]) for k in layout.keys()}, mesh)


def make_fed_step(step, layout: BatchLayout, mesh):
    """`fed(state, arrays, pos, off, key) -> step(state, batch, key)` with the
    batch gathered from resident `arrays` inside the (caller's) jit.

    The gathered batch is laid out over the mesh's data axis when its size
    divides it, and replicated otherwise, as `place_batch` does on the host;
    the step works on the global batch, so the result is the same.
    """
    shard = parallel.data_sharding(mesh)

    def fed(state, arrays, pos, off, key):
        batch = take_batch(arrays, pos, off, layout)
        if _shardable(pos.shape[0], mesh):
            batch = jax.lax.with_sharding_constraint(batch, shard)
        return step(state, batch, key)

    return fed


def epoch_batches(num: int, batch_size: int, seed: int, epoch: int) -> list:
    """Index arrays of one shuffled epoch, remainder batch last (no drop_last).

    A pure function of (seed, epoch), so a resumed run replays the batches.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(num)
    return [perm[i : i + batch_size] for i in range(0, num, batch_size)]


def place_batch(batch: dict, mesh) -> dict:
    """Shards the batch over the mesh's `data` axis, or replicates it when
    its size does not divide (the remainder batch): the step works on the
    global batch either way, so the result is the same.

    Every host passes the same global batch; when it is sharded, each host
    feeds only its `host_slice` of the rows (on one host: all of them).
    """
    if _shardable(len(batch["idx"]), mesh):
        return parallel.shard_global_batch(batch, mesh)
    return parallel.replicate(batch, mesh)


def _shardable(n: int, mesh) -> bool:
    """Whether a batch of n rows is split over the mesh's data axis (else it
    is replicated): the one rule of `make_fed_step` and `place_batch`."""
    return n % mesh.shape[parallel.DATA_AXIS] == 0
