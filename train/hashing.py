"""Trains DUCH or CHNR hash nets on precomputed image and caption features.

    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch
    python -m train.hashing --config configs/chnr.py:synthaerial --workdir w/chnr
    python -m eval.retrieval --codes w/chnr/codes.npz --out w/chnr/eval

`config.data.source` picks the features (`jaxcxai.hashing.data`):
"synthaerial" (MobileNetV2 + MiniLM features of SynthAerial, cached on
disk), "h5" (DUCH-format HDF5 files in `data.h5_path`, labels from
`data.json_path`), "synthetic" (planted class structure) or "auto" (h5 when
`h5_path` is set, else synthetic); any other source plugs in through
`train_and_evaluate(..., features=)`. The run is data-parallel over all
devices (global-batch losses), checkpointed at epoch ends (resumes from the
workdir), logs epoch sums of the loss terms to `metrics.jsonl`, and writes
the query/db codes with their labels to `codes.npz` (the layout
`eval.retrieval` reads) and the mAPs to `results.json`.
"""

import json
import logging
import os
import time
import warnings

import jax

from configs import cli
from jaxcxai import checkpoint, parallel, training
from jaxcxai.hashing import chnr, duch, feed, schedule
from jaxcxai.hashing import data as hashing_data
from jaxcxai.hashing.epochs import epoch_metrics, jit_step, run_epoch
from jaxcxai.hashing.evaluation import evaluate
from jaxcxai.hashing.evaluation import save_codes as _save_codes
from jaxcxai.metric_writers import JsonlWriter, write_json_atomic

CONFIG = "configs/duch.py"  # default config (`--help`); configs/chnr.py too


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
    data = hashing_data.prepare_data(
        **(features if features is not None else load_features(config)),
        standardize=d.standardize,
        standardize_with_eval_rows=q.standardize_with_eval_rows,
        random_split=q.random_split,
        train_frac=d.train_frac,
        query_frac=d.query_frac,
        seed=d.split_seed,
    )
    hyper = hyper_from_config(config)
    seed = schedule.run_seed(config.seed, config.quirks.unseeded, workdir)
    epochs = config.train.epochs
    phases = schedule.phases(
        config.method, hyper, data["train"], epochs,
        chnr_sets(data["train"], config) if config.method == "chnr" else None,
        config.chnr.clean_epochs if config.method == "chnr" else 0,
    )  # fmt: skip
    train = data["train"]
    di, dt = train["img"].shape[1], train["txt"].shape[1]
    module = duch if config.method == "duch" else chnr
    init = schedule.init_fn(module, hyper, di, dt, len(train["img"]))

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
    start = schedule.start_epoch(int(state.step), phases, bs)
    writer = JsonlWriter(os.path.join(workdir, "metrics.jsonl"))
    # Epochs after the restored checkpoint were logged by the interrupted run
    # and run again now: drop their records so each epoch is logged once.
    writer.truncate(int(state.step))
    evals = schedule.eval_epochs(
        epochs, config.eval.eval_every_epochs, config.quirks.eval_only_final,
        phases[0]["stop"] if config.method == "chnr" else 0,
    )  # fmt: skip
    history = schedule.past_evals(
        os.path.join(workdir, "metrics.jsonl"), int(state.step)
    )
    codes = None
    for ph in phases:
        lo = max(ph["start"], start)
        if lo >= ph["stop"]:
            continue
        part = ph["data"]
        layout = batch_layout(config, labels=ph["name"] == "meta")
        step_fn, arrays = jit_step(ph["step"], part, layout, mesh, compiler_options)
        end_fn = jax.jit(ph["end"], donate_argnums=0, out_shardings=repl)
        for epoch in range(lo, ph["stop"]):
            t0 = time.perf_counter()
            offsets = schedule.caption_offsets(
                part, epoch, config.seed, bool(config.quirks.one_caption_per_image)
            )
            state, sums = run_epoch(
                state, step_fn, arrays, part, layout, mesh, key_train,
                batch_size=bs, seed=seed, epoch=epoch, offsets=offsets,
            )  # fmt: skip
            lr = float(duch.learning_rate(state))
            state = end_fn(state, epoch)
            step = int(state.step)
            sums = epoch_metrics(sums, len(part["img"]), bs, step)
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
            last = epoch == epochs - 1
            if last or (epoch + 1) % config.train.checkpoint_every_epochs == 0:
                ckpt.save(state, force=True)
    ckpt.close()
    if codes is None or history[-1]["epoch"] != epochs - 1:
        res, codes = evaluate(
            state, data["query"], data["db"],
            sorted({config.eval.map_k, config.eval.select_k}), q.map_untruncated,
        )  # fmt: skip
        if not history or history[-1]["epoch"] != epochs - 1:
            history.append(dict(res, epoch=epochs - 1))
    _save_codes(os.path.join(workdir, "codes.npz"), codes, data)
    sel = f"map@{config.eval.select_k}/avg"
    results = {
        "method": config.method,
        "seed": seed,
        "steps": int(state.step),
        "final": history[-1],
        "best": max(history, key=lambda r: r[sel]),
        "quirks": {k: bool(v) for k, v in config.quirks.items()},
        "num_train": len(data["train"]["img"]),
    }
    noisy = [ph["data"]["noisy"] for ph in phases if "noisy" in ph["data"]]
    if noisy:  # CHNR: training pairs that really carry another image's caption
        results["noisy_pairs"] = int(noisy[0].sum())
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def hyper_from_config(config):
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


def chnr_sets(train: dict, config) -> tuple[dict, dict]:
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


def batch_layout(config, labels: bool) -> feed.BatchLayout:
    """What a batch carries under the config's quirks."""
    return feed.BatchLayout(
        one_caption=bool(config.quirks.one_caption_per_image),
        with_txt_aug=not config.quirks.txt2_is_txt1,
        with_labels=labels,
    )


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
        if source == "synthetic":
            # A UCM/RSICD config without its feature files must not look like
            # a run on UCM/RSICD.
            warnings.warn(
                f"data.h5_path is empty: this {d.dataset} config trains on "
                "SYNTHETIC features with planted classes, not on "
                f"{d.dataset}; its mAPs say nothing about {d.dataset}. Set "
                "--config.data.h5_path=DIR (the DUCH h5 feature files) or "
                "--config.data.source=synthetic to make the choice explicit.",
                stacklevel=2,
            )
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


def main(argv=None) -> dict:
    def run(args):
        results = train_and_evaluate(args.config, args.workdir)
        print(json.dumps(results["final"], indent=1))
        return results

    return cli.main(run, argv, prog="train.hashing", config=CONFIG, doc=__doc__)


if __name__ == "__main__":
    main()
