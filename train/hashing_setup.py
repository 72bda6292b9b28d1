"""Config to arguments for `train.hashing`: hyperparameters, training sets
and phases, batches, evaluation epochs and the feature source.

The config (an ml_collections ConfigDict) is read here, at the script
boundary; the library functions get plain arguments.
"""

import functools
import json
import os
import secrets

import numpy as np

from jaxcxai.hashing import chnr, duch, feed
from jaxcxai.hashing import data as hashing_data
from jaxcxai.metric_writers import read_jsonl, write_json_atomic


def _chnr_sets(train: dict, config) -> tuple[dict, dict]:
    """(noisy main-phase set, clean meta-phase set) as index/array dicts."""
    q, c = config.quirks, config.chnr
    return hashing_data.chnr_sets(
        train,
        noise_prob=c.noise_prob,
        clean_fraction=c.clean_fraction,
        seed=config.data.split_seed,
        always_clean_20=q.chnr_always_clean_20,
        clean_label_bug=q.chnr_clean_label_bug,
        buffer_index_mismatch=q.chnr_buffer_index_mismatch,
    )


def _hyper(config):
    q, lo, op = config.quirks, config.loss, config.optim
    kw = dict(
        bits=config.model.bits,
        hidden=config.model.hidden,
        alpha=lo.alpha,
        beta=lo.beta,
        gamma=lo.gamma,
        contrastive_weights=tuple(lo.contrastive_weights),
        gp_weight=lo.gp_weight,
        ntx_tau=lo.ntx_tau,
        lr=op.lr,
        weight_decay=op.weight_decay,
        lr_decay=op.lr_decay,
        lr_decay_every=op.lr_decay_every,
        lr_min=op.lr_min,
        txt2_is_txt1=q.txt2_is_txt1,
        adv_on_text=q.adv_on_text,
        ntx_subtract_e=q.ntx_subtract_e,
        ntx_sum=q.ntx_sum,
        lr_decay_after_epoch0=q.lr_decay_after_epoch0,
    )
    if config.method == "duch":
        extra = dict(disc_lr=op.disc_lr, disc_b1=op.disc_b1, disc_b2=op.disc_b2)
        return duch.DuchHyper(**kw, **extra, disc_weight_decay=op.disc_weight_decay)
    c = config.chnr
    return chnr.ChnrHyper(
        **kw,
        noise_weights=c.noise_weights,
        detector_hidden=c.detector_hidden or None,
        detector_blocks=c.detector_blocks,
        detector_dropout=c.detector_dropout,
        det_lr=c.det_lr,
        det_b1=c.det_b1,
        det_b2=c.det_b2,
        det_weight_decay=c.det_weight_decay,
        dropout_in_weights=q.chnr_dropout_in_weights,
        fake_pairs_use_labels=q.chnr_fake_pairs_use_labels,
    )


def _run_seed(config, workdir: str) -> int:
    """The config seed, or with `quirks.unseeded` a fresh one kept for resume."""
    if not config.quirks.unseeded:
        return config.seed
    path = os.path.join(workdir, "seed.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["seed"]
    seed = secrets.randbits(31)
    write_json_atomic(path, {"seed": seed})
    return seed


def _phases(config, hyper, data) -> list[dict]:
    """Training phases: DUCH has one; CHNR a meta and a main phase."""
    train, epochs = data["train"], config.train.epochs
    if config.method == "duch":
        train = dict(train, buffer_idx=np.arange(len(train["img"])))
        step = duch.make_train_step(hyper)
        end = functools.partial(duch.epoch_end, hyper=hyper)
        return [
            dict(name="train", start=0, stop=epochs, data=train, step=step, end=end)
        ]
    main, meta = _chnr_sets(train, config)
    clean_epochs = min(config.chnr.clean_epochs, epochs)
    end = lambda is_meta: lambda s, e: chnr.epoch_end(s, e, hyper, is_meta)
    return [
        dict(name="meta", start=0, stop=clean_epochs, data=meta,
             step=chnr.make_meta_step(hyper), end=end(True)),
        dict(name="main", start=clean_epochs, stop=epochs, data=main,
             step=chnr.make_main_step(hyper), end=end(False)),
    ]  # fmt: skip


def _start_epoch(step: int, phases: list[dict], batch_size: int) -> int:
    """The epoch a state with `step` updates resumes at (saves are at epoch ends)."""
    done = 0
    for ph in phases:
        per_epoch = -(-len(ph["data"]["img"]) // batch_size)
        steps = (ph["stop"] - ph["start"]) * per_epoch
        if step < done + steps:
            return ph["start"] + (step - done) // per_epoch
        done += steps
    return phases[-1]["stop"]


def _layout(config, labels: bool) -> feed.BatchLayout:
    return feed.BatchLayout(
        one_caption=bool(config.quirks.one_caption_per_image),
        with_txt_aug=not config.quirks.txt2_is_txt1,
        with_labels=labels,
    )


def _offsets(part: dict, epoch: int, config) -> np.ndarray | None:
    """Caption index per training row for `epoch` (a fresh caption of each
    image every epoch), or None with one caption per image."""
    if config.quirks.one_caption_per_image:
        return None
    k = part["txt_all"].shape[1]
    rng = np.random.default_rng([config.seed, epoch, 1])
    return rng.integers(0, k, len(part["img"])).astype(np.int32)


def _batch(part: dict, pos: np.ndarray, epoch: int, config, labels: bool) -> dict:
    """The host-side batch of rows `pos` (what the fed step gathers on device)."""
    off = _offsets(part, epoch, config)
    return feed.take_batch(
        part, pos, None if off is None else off[pos], _layout(config, labels)
    )


def _eval_epochs(config, phases) -> set[int]:
    last = config.train.epochs - 1
    marks = {last}
    if config.method == "chnr" and phases[0]["stop"] > 0:
        marks.add(phases[0]["stop"] - 1)
    every = config.eval.eval_every_epochs
    if not config.quirks.eval_only_final and every:
        marks.update(range(every - 1, last, every))
    return marks


@functools.cache
def _init_fn(module, hyper, image_dim: int, text_dim: int, num_train: int):
    """`key -> state`; one object per setting, so jit's cache serves repeated
    runs in one process (the init program takes seconds to compile)."""
    return lambda key: module.init_state(key, hyper, image_dim, text_dim, num_train)


def _past_evals(path: str, step: int) -> list[dict]:
    """Evaluations logged by earlier runs of a resumed workdir (up to `step`)."""
    if not os.path.exists(path):
        return []
    out = []
    for r in read_jsonl(path):
        if "eval/epoch" in r and r["step"] <= step:
            res = {k[5:]: v for k, v in r.items() if k.startswith("eval/")}
            out.append(res)
    return out


SOURCES = ("auto", "synthaerial", "h5", "synthetic")


def default_cache_dir() -> str:
    """Where SynthAerial features are cached when `cache_dir` is ""."""
    from jaxcxai.models.pretrained import cache_dir

    return str(cache_dir() / "hashing_features")


def load_features(config) -> dict:
    """Feature arrays of `config.data` (see the module docstring)."""
    d = config.data
    source = d.get("source", "auto")
    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
    if source == "auto":
        source = "h5" if d.h5_path else "synthetic"
    if source == "h5":
        if not d.h5_path:
            raise ValueError("data.source='h5' needs data.h5_path")
        return hashing_data.h5_features(
            d.h5_path, d.json_path, d.dataset, d.image_aug, d.text_aug
        )
    if source == "synthetic":
        return hashing_data.synthetic_features(**d.synthetic.to_dict())
    s = d.synthaerial
    # The augmented caption is fed only when the txt2_is_txt1 quirk is off.
    text_aug = None if config.quirks.txt2_is_txt1 else s.text_aug or None
    return hashing_data.synthaerial_features(
        s.num_images,
        size=s.image_size,
        seed=s.seed,
        cache_dir=s.cache_dir or default_cache_dir(),
        image_backbone=s.backbone,
        input_size=s.input_size or None,
        crop=s.crop,
        text_aug=text_aug,
        labels=s.labels,
        batch_size=s.batch_size,
    )
