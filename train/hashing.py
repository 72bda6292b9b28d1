"""Trains DUCH or CHNR hash nets on precomputed image and caption features.

    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch
    python -m train.hashing --config configs/chnr.py:ucm --workdir workdirs/chnr

Features come from DUCH-format HDF5 files (`config.data.h5_path`, labels from
`config.data.json_path`) or, without them, from `synthetic_features`; any
other source plugs in through `prepare_data(image_features, text_features,
labels, ...)`. The run is data-parallel over all devices (global-batch
losses), checkpointed at epoch ends (resumes from the workdir), logs epoch
sums of the loss terms to `metrics.jsonl`, and writes the query/db codes to
`codes.npz` and the mAPs to `results.json`.
"""

import functools
import json
import logging
import os
import secrets
import time

import jax
import numpy as np

from configs import cli
from jaxcxai import checkpoint, parallel, training
from jaxcxai.data import duch_h5, noise
from jaxcxai.hashing import chnr, duch
from jaxcxai.metric_writers import JsonlWriter, read_jsonl, write_json_atomic
from jaxcxai.metrics import retrieval
from jaxcxai.training import NonFiniteLossError

DIRECTIONS = {"i2t": ("img", "txt"), "t2i": ("txt", "img")}
DIRECTIONS.update({"i2i": ("img", "img"), "t2t": ("txt", "txt")})
# Logged as epoch means; every other metric (the loss terms) as epoch sums,
# as the reference logs them.
MEAN_METRICS = {"r1", "r2", "f1", "f2", "weight_mean"}


def synthetic_features(cfg) -> dict:
    """Features with planted class structure (placeholder for real ones).

    Each class has a random centre per modality; an image is its centre plus
    Gaussian noise, each of its captions the text centre plus noise, and the
    augmented views add `aug_noise` more. Splits follow the UCM JSON layout
    (per class: 80 % train, 10 % test, 10 % val).
    """
    rng = np.random.default_rng(cfg.seed)
    n, c, k = cfg.num_images, cfg.num_classes, cfg.captions_per_image
    codes = np.arange(n) % c
    ci = cfg.class_scale * rng.normal(size=(c, cfg.image_dim))
    ct = cfg.class_scale * rng.normal(size=(c, cfg.text_dim))
    img = ci[codes] + cfg.noise * rng.normal(size=(n, cfg.image_dim))
    txt = ct[codes][:, None] + cfg.noise * rng.normal(size=(n, k, cfg.text_dim))
    f32 = lambda a: a.astype(np.float32)
    return {
        "image_features": f32(img),
        "image_features_aug": f32(img + cfg.aug_noise * rng.normal(size=img.shape)),
        "text_features": f32(txt),
        "text_features_aug": f32(txt + cfg.aug_noise * rng.normal(size=txt.shape)),
        "labels": np.eye(c, dtype=np.float32)[codes],
        "json_split": _json_like_split(codes),
    }


def _json_like_split(codes: np.ndarray) -> np.ndarray:
    split = np.empty(len(codes), object)
    for c in np.unique(codes):
        pos = np.flatnonzero(codes == c)
        n_train, n_test = int(0.8 * len(pos)), int(0.1 * len(pos))
        split[pos[:n_train]] = "train"
        split[pos[n_train : n_train + n_test]] = "test"
        split[pos[n_train + n_test :]] = "val"
    return split


def h5_features(cfg) -> dict:
    """Raw (unstandardised) reference features and JSON labels/splits."""
    from jaxcxai.data.captions import load_caption_json

    if not cfg.json_path:
        raise ValueError("data.h5_path needs data.json_path (labels and splits)")
    meta = load_caption_json(cfg.json_path)
    paths = duch_h5.feature_paths(cfg.h5_path, cfg.dataset, cfg.image_aug, cfg.text_aug)
    read = lambda name, key: duch_h5.read_h5_array(paths[name], key).astype(np.float32)
    n, k = meta.num_images, meta.captions_per_image
    num_classes = len(meta.class_names)
    return {
        "image_features": read("image", duch_h5.IMAGE_KEY),
        "image_features_aug": read("image_aug", duch_h5.IMAGE_KEY),
        "text_features": read("caption", duch_h5.CAPTION_KEY).reshape(n, k, -1),
        "text_features_aug": read("caption_aug", duch_h5.CAPTION_KEY).reshape(n, k, -1),
        "labels": np.eye(num_classes, dtype=np.float32)[meta.labels],
        "json_split": np.asarray(meta.splits, object),
    }


def prepare_data(
    image_features,
    text_features,
    labels,
    *,
    image_features_aug=None,
    text_features_aug=None,
    json_split=None,
    standardize=True,
    standardize_with_eval_rows=True,
    random_split=True,
    train_frac=0.5,
    query_frac=0.2,
    seed=42,
) -> dict:
    """Train/query/db subsets of per-image features (hashing.md §1.2, §1.5).

    Args:
      image_features: (N, Di); image_features_aug: view 2 (default: view 1).
      text_features: (N, K, Dt) or (N, Dt); text_features_aug likewise.
      labels: (N, L) multi-hot (or (N,) class codes).
      json_split: (N,) "train"/"val"/"test", used when not `random_split`
        (query = test, db = train + val).
      standardize: scalar mean/std standardisation of each array, over all
        rows (`standardize_with_eval_rows`, the reference) or train rows only.
      random_split: the reference's seeded 50/10/40 split.
      seed: split and caption-choice seed.

    Returns:
      {'train', 'query', 'db'}, each a dict with `image_idx`, `img`,
      `img_aug`, `txt`, `txt_aug` (the chosen caption), `labels` (n, L);
      train also has `txt_all`, `txt_aug_all` (n, K, Dt).
    """
    x = np.asarray(image_features, np.float32)
    n = x.shape[0]
    x_aug = x if image_features_aug is None else np.asarray(image_features_aug)
    t = np.asarray(text_features, np.float32)
    t = t[:, None] if t.ndim == 2 else t
    t_aug = t if text_features_aug is None else np.asarray(text_features_aug)
    t_aug = t_aug[:, None] if t_aug.ndim == 2 else t_aug
    labels = np.asarray(labels, np.float32)
    if labels.ndim == 1:
        labels = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels.astype(int)]
    for name, a in [("image_features_aug", x_aug), ("text_features", t)]:
        if a.shape[0] != n or labels.shape[0] != n:
            raise ValueError(
                f"row counts differ: image_features {x.shape}, {name} {a.shape}, "
                f"labels {labels.shape}"
            )
    if random_split:
        s = duch_h5.split_indexes(n, train_frac, query_frac, seed)
        parts = {"train": s.train, "query": s.query, "db": s.db}
    else:
        if json_split is None:
            raise ValueError("random_split=False needs json_split (N,) values")
        js = np.asarray(json_split)
        parts = {
            "train": np.flatnonzero(js == "train"),
            "query": np.flatnonzero(js == "test"),
            "db": np.flatnonzero((js == "train") | (js == "val")),
        }
    if standardize:
        rows = slice(None) if standardize_with_eval_rows else parts["train"]
        std = lambda a: ((a - a[rows].mean()) / a[rows].std()).astype(np.float32)
        x, x_aug, t, t_aug = std(x), std(x_aug), std(t), std(t_aug)
    out = {}
    for name, idx in parts.items():
        off = duch_h5.caption_offsets(len(idx), t.shape[1], seed) % t.shape[1]
        out[name] = {
            "image_idx": idx,
            "img": x[idx],
            "img_aug": x_aug[idx],
            "txt": t[idx, off],
            "txt_aug": t_aug[idx, off],
            "labels": labels[idx],
        }
    out["train"]["txt_all"] = t[parts["train"]]
    out["train"]["txt_aug_all"] = t_aug[parts["train"]]
    return out


def _class_ids(labels: np.ndarray) -> np.ndarray:
    """(n,) ids of distinct label vectors ("another label" = another id)."""
    return np.unique(labels, axis=0, return_inverse=True)[1].reshape(-1)


def _chnr_sets(train: dict, config) -> tuple[dict, dict]:
    """(noisy main-phase set, clean meta-phase set) as index/array dicts."""
    q, c = config.quirks, config.chnr
    n = len(train["img"])
    ids = _class_ids(train["labels"])
    always = 0.2 if q.chnr_always_clean_20 else c.clean_fraction
    k = train["txt_all"].shape[1]
    nz = noise.inject_noise(ids, c.noise_prob, k, config.data.split_seed, always)
    main = {
        key: v[nz.source] if key.startswith("txt") else v for key, v in train.items()
    }
    main["buffer_idx"] = np.arange(n)
    main["noisy"] = nz.noisy
    clean_idx = noise.clean_subset(n, c.clean_fraction, config.data.split_seed)
    meta = {key: v[clean_idx] for key, v in train.items()}
    meta["class_ids"] = noise.clean_subset_labels(
        ids, clean_idx, q.chnr_clean_label_bug
    )
    mismatch = q.chnr_buffer_index_mismatch
    meta["buffer_idx"] = np.arange(len(clean_idx)) if mismatch else clean_idx
    return main, meta


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


def map_at_k(query_codes, db_codes, query_labels, db_labels, k, untruncated):
    """mAP@K: the reference's untruncated form (QUIRK §7.2-9) or the
    standard AP@K truncated at K, normalised by min(K, R)."""
    semantics = "reference" if untruncated else "standard"
    return retrieval.mean_average_precision(
        query_codes, db_codes, query_labels, db_labels, k, semantics=semantics
    )


def evaluate(state, query: dict, db: dict, ks, untruncated: bool) -> dict:
    """mAP@K of the four directions and their mean for each K in `ks`."""
    codes = {
        (s, m): duch.encode(state, part[m], m)
        for s, part in (("q", query), ("db", db))
        for m in ("img", "txt")
    }
    out = {}
    for k in ks:
        for name, (mq, md) in DIRECTIONS.items():
            out[f"map@{k}/{name}"] = map_at_k(
                codes["q", mq],
                codes["db", md],
                query["labels"],
                db["labels"],
                k,
                untruncated,
            )
        out[f"map@{k}/avg"] = float(np.mean([out[f"map@{k}/{d}"] for d in DIRECTIONS]))
    return out, codes


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


def _batch(part: dict, pos: np.ndarray, epoch: int, config, labels: bool) -> dict:
    b = {
        "idx": part["buffer_idx"][pos].astype(np.int32),
        "img": part["img"][pos],
        "img_aug": part["img_aug"][pos],
    }
    if config.quirks.one_caption_per_image:
        b["txt"], b["txt_aug"] = part["txt"][pos], part["txt_aug"][pos]
    else:  # a fresh caption of each image every epoch
        k = part["txt_all"].shape[1]
        off = np.random.default_rng([config.seed, epoch, 1]).integers(
            0, k, len(part["img"])
        )[pos]
        b["txt"] = part["txt_all"][pos, off]
        b["txt_aug"] = part["txt_aug_all"][pos, off]
    if config.quirks.txt2_is_txt1:
        del b["txt_aug"]
    if labels:
        b["labels"] = part["class_ids"][pos].astype(np.int32)
    return b


def _eval_epochs(config, phases) -> set[int]:
    last = config.train.epochs - 1
    marks = {last}
    if config.method == "chnr" and phases[0]["stop"] > 0:
        marks.add(phases[0]["stop"] - 1)
    every = config.eval.eval_every_epochs
    if not config.quirks.eval_only_final and every:
        marks.update(range(every - 1, last, every))
    return marks


def _save_codes(path: str, codes: dict, data: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(
            f,
            query_img=codes["q", "img"],
            query_txt=codes["q", "txt"],
            db_img=codes["db", "img"],
            db_txt=codes["db", "txt"],
            query_labels=data["query"]["labels"],
            db_labels=data["db"]["labels"],
            query_image_idx=data["query"]["image_idx"],
            db_image_idx=data["db"]["image_idx"],
        )
    os.replace(tmp, path)


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


def load_features(config) -> dict:
    """Feature arrays of `config.data` (HDF5 if `h5_path`, else synthetic)."""
    if config.data.h5_path:
        return h5_features(config.data)
    return synthetic_features(config.data.synthetic)


def train_and_evaluate(
    config,
    workdir: str,
    features: dict | None = None,
    compiler_options: dict | None = None,
) -> dict:
    """Trains `config.method` and returns the final (and best) mAPs.

    Args:
      config: a configs/duch.py or configs/chnr.py config.
      workdir: checkpoints, metrics.jsonl, codes.npz, results.json.
      features: optional `prepare_data` keyword arrays (image_features,
        text_features, labels, ...); default `load_features(config)`.
      compiler_options: XLA options for the step's `jax.jit` (smoke tests
        pass `{"xla_backend_optimization_level": 0}` to compile faster).
    """
    if config.method not in ("duch", "chnr"):
        raise ValueError(
            f"config.method must be 'duch' or 'chnr', got {config.method!r}"
        )
    os.makedirs(workdir, exist_ok=True)
    q, d = config.quirks, config.data
    data = prepare_data(
        **(features if features is not None else load_features(config)),
        standardize=d.standardize,
        standardize_with_eval_rows=q.standardize_with_eval_rows,
        random_split=q.random_split,
        train_frac=d.train_frac,
        query_frac=d.query_frac,
        seed=d.split_seed,
    )
    hyper = _hyper(config)
    seed = _run_seed(config, workdir)
    phases = _phases(config, hyper, data)
    train = data["train"]
    di, dt = train["img"].shape[1], train["txt"].shape[1]
    module = duch if config.method == "duch" else chnr
    init = _init_fn(module, hyper, di, dt, len(train["img"]))

    devices = jax.devices()[: config.mesh.num_devices or None]
    mesh = parallel.make_mesh(config.mesh.num_model, devices)
    repl = parallel.replicated_sharding(mesh)
    key_init, key_train = jax.random.split(jax.random.key(seed))
    ckpt = checkpoint.Checkpointer(
        os.path.join(workdir, "ckpt"), save_every=1, keep=config.train.keep_checkpoints
    )
    state = ckpt.restore(training.abstract_state(init, key_init, repl))
    if state is None:
        state = training.init_state_sharded(init, key_init, repl)
    else:
        logging.info("resumed from step %d", int(state.step))
    bs = config.train.batch_size
    start = _start_epoch(int(state.step), phases, bs)
    writer = JsonlWriter(os.path.join(workdir, "metrics.jsonl"))
    evals = _eval_epochs(config, phases)
    history = _past_evals(os.path.join(workdir, "metrics.jsonl"), int(state.step))
    codes = None
    for ph in phases:
        lo = max(ph["start"], start)
        if lo >= ph["stop"]:
            continue
        step_fn = jax.jit(
            ph["step"],
            donate_argnums=0,
            out_shardings=(repl, repl),
            compiler_options=compiler_options,
        )
        end_fn = jax.jit(ph["end"], donate_argnums=0, out_shardings=repl)
        part = ph["data"]
        for epoch in range(lo, ph["stop"]):
            t0 = time.perf_counter()
            sums = {}
            for pos in duch.epoch_batches(len(part["img"]), bs, seed, epoch):
                b = _batch(part, pos, epoch, config, labels=ph["name"] == "meta")
                state, m = step_fn(state, duch.place_batch(b, mesh), key_train)
                sums = {k: sums.get(k, 0.0) + v for k, v in m.items()}
            lr = float(duch.learning_rate(state))
            state = end_fn(state, epoch)
            sums = {k: float(v) for k, v in jax.device_get(sums).items()}
            for k in MEAN_METRICS & set(sums):  # probabilities: epoch means
                sums[k] /= -(-len(part["img"]) // bs)
            step = int(state.step)
            bad = [k for k, v in sums.items() if not np.isfinite(v)]
            if bad:
                raise NonFiniteLossError(step, bad[0], sums[bad[0]])
            record = dict(sums, epoch=epoch, lr=lr, epoch_s=time.perf_counter() - t0)
            writer.write_scalars(step, record)
            if epoch in evals:
                res, codes = evaluate(
                    state, data["query"], data["db"],
                    sorted({config.eval.map_k, config.eval.select_k}),
                    q.map_untruncated,
                )  # fmt: skip
                record = {f"eval/{k}": v for k, v in res.items()}
                writer.write_scalars(step, dict(record, **{"eval/epoch": epoch}))
                history.append(dict(res, epoch=epoch))
            last = epoch == config.train.epochs - 1
            if last or (epoch + 1) % config.train.checkpoint_every_epochs == 0:
                ckpt.save(state, force=True)
    ckpt.close()
    if codes is None or history[-1]["epoch"] != config.train.epochs - 1:
        res, codes = evaluate(
            state, data["query"], data["db"],
            sorted({config.eval.map_k, config.eval.select_k}), q.map_untruncated,
        )  # fmt: skip
        if not history or history[-1]["epoch"] != config.train.epochs - 1:
            history.append(dict(res, epoch=config.train.epochs - 1))
    _save_codes(os.path.join(workdir, "codes.npz"), codes, data)
    sel = f"map@{config.eval.select_k}/avg"
    results = {
        "method": config.method,
        "seed": seed,
        "steps": int(state.step),
        "final": history[-1],
        "best": max(history, key=lambda r: r[sel]),
        "quirks": {k: bool(v) for k, v in config.quirks.items()},
    }
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    cli.save_config(args.config, args.workdir)
    results = train_and_evaluate(args.config, args.workdir)
    print(json.dumps(results["final"], indent=1))


if __name__ == "__main__":
    main()
