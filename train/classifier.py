"""Trains a backbone on SynthAerial (scene + object presence), or on digits.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn [--config.train.steps=3000]

Data-parallel over all devices, checkpointed (resumes from the workdir),
metrics in `workdir/metrics.jsonl`, final accuracies in `workdir/results.json`.
"""

from __future__ import annotations

import functools
import logging
import os

import jax
import numpy as np

from configs import cli
from jaxcxai import checkpoint, parallel, training
from jaxcxai.data import pipeline
from jaxcxai.metric_writers import JsonlWriter, write_json_atomic
from jaxcxai.models.zoo import MODELS, get_model
from jaxcxai.training import backbone, classify


def _synthaerial(cfg):
    from jaxcxai.data import synthaerial

    def split(num, seed):
        d = synthaerial.generate(
            num, size=cfg.image_size, seed=seed, boat_on_water_p=cfg.boat_on_water_p
        )
        return {
            "image": d["image"],
            "label": d["scene"].astype(np.int32),
            "multilabel": d["objects_present"],
        }

    # Test images come from another seed: disjoint by construction.
    train = split(cfg.num_train, cfg.seed)
    test = split(cfg.num_test, cfg.seed + 10_000)
    return train, test, synthaerial.SCENES, synthaerial.CONCEPTS


def _digits(cfg):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0 * 255).astype(np.uint8)
    images = np.repeat(images[..., None], 3, axis=-1)
    perm = np.random.default_rng(cfg.seed).permutation(len(images))
    tr, te = perm[: cfg.num_train], perm[cfg.num_train : cfg.num_train + cfg.num_test]
    split = lambda idx: {"image": images[idx], "label": d.target[idx].astype(np.int32)}
    return split(tr), split(te), tuple(str(i) for i in range(10)), ()


DATASETS = {"synthaerial": _synthaerial, "digits": _digits}


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict:
    """Trains `config.model.name` and returns the test metrics."""
    if config.data.name not in DATASETS:
        raise ValueError(
            f"unknown dataset {config.data.name!r}; valid: {list(DATASETS)}"
        )
    if config.model.name not in MODELS:
        raise ValueError(f"unknown model {config.model.name!r}; valid: {list(MODELS)}")
    cli.save_config(config, workdir)
    train, test, classes, labels = DATASETS[config.data.name](config.data)
    num_classes = len(classes)
    mesh = parallel.make_mesh(config.mesh.num_model)
    parallel.check_batch_size(config.train.batch_size, mesh)
    meta = backbone.BackboneMeta(
        model=config.model.name,
        outputs=backbone.output_names(classes, labels),
        num_classes=num_classes,
        image_size=int(train["image"].shape[1]),
        dataset=config.data.name,
        lr=config.train.lr,
        steps=config.train.steps,
        weight_decay=config.train.weight_decay,
    )
    backbone.save_meta(workdir, meta)
    model = get_model(config.model.name, num_classes=len(meta.outputs))
    pre = backbone.preprocess_fn(config.model.name)
    tx = backbone.classifier_tx(meta.lr, meta.steps, meta.weight_decay)
    dummy = np.zeros((1,) + train["image"].shape[1:], np.float32)
    init = lambda key: training.create_train_state(model, tx, key, dummy)
    repl = parallel.replicated_sharding(mesh)
    key_init, key_train = jax.random.split(jax.random.key(config.seed))

    ckpt = checkpoint.Checkpointer(
        os.path.join(workdir, "ckpt"),
        save_every=config.train.checkpoint_every,
        keep=config.train.keep_checkpoints,
    )
    state = ckpt.restore(training.abstract_state(init, key_init, repl))
    if state is None:
        state = training.init_state_sharded(init, key_init, repl)
    else:
        logging.info("resumed from step %d", int(state.step))

    n, batch = len(train["image"]), config.train.batch_size
    per_epoch = pipeline.steps_per_epoch(n, batch)
    # Batches are a pure function of the step (epoch order from (seed, epoch)),
    # so a resumed run sees exactly the batches of an uninterrupted one.
    epoch_rows = functools.lru_cache(maxsize=2)(
        lambda epoch: pipeline.batch_indices(n, batch, epoch, seed=config.seed)
    )

    def batch_fn(step):
        idx = epoch_rows(step // per_epoch)[step % per_epoch]
        return parallel.shard_batch(pipeline.fetch(train, idx), mesh)

    last_eval = {}

    def evaluate(state):
        # The loop evaluates at its last step; the final results reuse that.
        step = int(state.step)
        if last_eval.get("step") != step:
            logging.info(
                "evaluating %d test images at step %d", len(test["image"]), step
            )
            logits = classify.predict(state.apply_fn, state.variables(), pre,
                                      test["image"], mesh=mesh)  # fmt: skip
            last_eval.update(step=step, metrics=classify.classification_metrics(
                logits, test["label"], num_classes, test.get("multilabel")))  # fmt: skip
        return last_eval["metrics"]

    loss_fn = classify.classification_loss_fn(
        model.apply, pre, num_classes, config.train.multilabel_weight
    )
    state = training.train_loop(
        state,
        training.make_train_step(loss_fn),
        batch_fn,
        key_train,
        num_steps=config.train.steps,
        writer=JsonlWriter(os.path.join(workdir, "metrics.jsonl")),
        log_every=config.train.log_every,
        checkpointer=ckpt,
        eval_fn=evaluate if config.train.eval_every else None,
        eval_every=config.train.eval_every,
        progress=progress,
    )
    ckpt.close()
    results = dict(evaluate(state), steps=int(state.step), model=config.model.name)
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


CONFIG = "configs/classifier.py"  # default config file (`--help` lists it)


def main(argv=None) -> dict:
    """`python -m train.classifier`; `--help` lists variants and fields."""

    def run(args):
        results = train_and_evaluate(args.config, args.workdir)
        print(results)
        return results

    return cli.main(run, argv, prog="train.classifier", config=CONFIG, doc=__doc__)


if __name__ == "__main__":
    main()
