"""The epoch schedule of a DUCH / CHNR run: phases, resume points, caption
draws per epoch, evaluation epochs and the evaluations a resumed run logged.

DUCH (Mikriukov et al. 2022) trains one phase; CHNR (Mikriukov et al. 2022,
"Unsupervised contrastive hashing for cross-modal retrieval in remote sensing"
with noisy captions) trains a meta phase on the clean subset and then the
main phase on all (noisy) pairs. Checkpoints are saved at epoch ends, so a
state's step count fixes the epoch a resumed run starts at.
"""

from __future__ import annotations

import functools
import json
import os
import secrets

import numpy as np

from jaxcxai.hashing import chnr, duch
from jaxcxai.metric_writers import read_jsonl, write_json_atomic

__all__ = [
    "caption_offsets",
    "eval_epochs",
    "init_fn",
    "past_evals",
    "phases",
    "run_seed",
    "start_epoch",
]


def phases(
    method: str, hyper, train: dict, epochs: int, sets=None, clean_epochs: int = 0
) -> list[dict]:
    """Training phases: {name, start, stop (epochs), data, step, end}.

    Args:
      method: "duch" (one phase) or "chnr" (meta, then main).
      hyper: `DuchHyper` or `ChnrHyper`.
      train: the training arrays (`data.prepare_data(...)["train"]`).
      epochs: total epochs.
      sets: CHNR only, `(main, meta)` from `data.chnr_sets`.
      clean_epochs: CHNR meta-phase epochs (capped at `epochs`).
    """
    if method == "duch":
        train = dict(train, buffer_idx=np.arange(len(train["img"])))
        step = duch.make_train_step(hyper)
        end = functools.partial(duch.epoch_end, hyper=hyper)
        return [
            dict(name="train", start=0, stop=epochs, data=train, step=step, end=end)
        ]
    if sets is None:
        raise ValueError("CHNR phases need the (main, meta) training sets")
    main, meta = sets
    clean_epochs = min(clean_epochs, epochs)
    end = lambda is_meta: lambda s, e: chnr.epoch_end(s, e, hyper, is_meta)  # noqa: E731
    return [
        dict(name="meta", start=0, stop=clean_epochs, data=meta,
             step=chnr.make_meta_step(hyper), end=end(True)),
        dict(name="main", start=clean_epochs, stop=epochs, data=main,
             step=chnr.make_main_step(hyper), end=end(False)),
    ]  # fmt: skip


def start_epoch(step: int, phase_list: list[dict], batch_size: int) -> int:
    """The epoch a state with `step` updates resumes at (saves are at epoch ends)."""
    done = 0
    for ph in phase_list:
        per_epoch = -(-len(ph["data"]["img"]) // batch_size)
        steps = (ph["stop"] - ph["start"]) * per_epoch
        if step < done + steps:
            return ph["start"] + (step - done) // per_epoch
        done += steps
    return phase_list[-1]["stop"]


def caption_offsets(part: dict, epoch: int, seed: int, one_caption: bool):
    """Caption index per training row for `epoch` (a fresh caption of each
    image every epoch, drawn from (seed, epoch)), or None with one caption
    per image (the reference's quirk)."""
    if one_caption:
        return None
    k = part["txt_all"].shape[1]
    rng = np.random.default_rng([seed, epoch, 1])
    return rng.integers(0, k, len(part["img"])).astype(np.int32)


def eval_epochs(
    epochs: int, every: int, only_final: bool, meta_stop: int = 0
) -> set[int]:
    """Epochs after which the run evaluates: the last, every `every`-th
    (unless `only_final`), and the end of a CHNR meta phase (`meta_stop` > 0)."""
    last = epochs - 1
    marks = {last}
    if meta_stop > 0:
        marks.add(meta_stop - 1)
    if not only_final and every:
        marks.update(range(every - 1, last, every))
    return marks


@functools.cache
def init_fn(module, hyper, image_dim: int, text_dim: int, num_train: int):
    """`key -> state`; one object per setting, so jit's cache serves repeated
    runs in one process (the init program takes seconds to compile)."""
    return lambda key: module.init_state(key, hyper, image_dim, text_dim, num_train)


def past_evals(path: str, step: int) -> list[dict]:
    """Evaluations logged by earlier runs of a resumed workdir (up to `step`)."""
    if not os.path.exists(path):
        return []
    out = []
    for r in read_jsonl(path):
        if "eval/epoch" in r and r["step"] <= step:
            res = {k[5:]: v for k, v in r.items() if k.startswith("eval/")}
            out.append(res)
    return out


def run_seed(seed: int, unseeded: bool, workdir: str) -> int:
    """`seed`, or with the reference's `unseeded` quirk a fresh seed, kept in
    `workdir/seed.json` so that a resumed run continues with it."""
    if not unseeded:
        return seed
    path = os.path.join(workdir, "seed.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["seed"]
    fresh = secrets.randbits(31)
    write_json_atomic(path, {"seed": fresh})
    return fresh
