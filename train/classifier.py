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
import optax

from configs import cli
from jaxcxai import checkpoint, hostmem, parallel, training
from jaxcxai.data import pipeline
from jaxcxai.metric_writers import JsonlWriter, write_json_atomic
from jaxcxai.models.preprocess import NORMALIZATION, preprocess
from jaxcxai.models.zoo import MODELS, get_model
from jaxcxai.training import classify


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
    return train, test, len(synthaerial.SCENES), len(synthaerial.CONCEPTS)


def _digits(cfg):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0 * 255).astype(np.uint8)
    images = np.repeat(images[..., None], 3, axis=-1)
    perm = np.random.default_rng(cfg.seed).permutation(len(images))
    tr, te = perm[: cfg.num_train], perm[cfg.num_train : cfg.num_train + cfg.num_test]
    split = lambda idx: {"image": images[idx], "label": d.target[idx].astype(np.int32)}
    return split(tr), split(te), 10, 0


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
    train, test, num_classes, num_labels = DATASETS[config.data.name](config.data)
    mesh = parallel.make_mesh(config.mesh.num_model)
    parallel.check_batch_size(config.train.batch_size, mesh)
    model = get_model(config.model.name, num_classes=num_classes + num_labels)
    pre = preprocess_fn(config.model.name)
    tx = _make_tx(config.train)
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

    def evaluate(state):
        logits = classify.predict(state.apply_fn, state.variables(), pre, test["image"])
        return classify.classification_metrics(
            logits, test["label"], num_classes, test.get("multilabel")
        )

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


def preprocess_fn(model_name: str):
    """The input normalization a backbone is trained and evaluated with.

    Backbones without an entry of their own (e.g. `small_cnn`) use ImageNet
    mean/std, as `resnet18` does.
    """
    return functools.partial(
        preprocess, model_name if model_name in NORMALIZATION else "resnet18"
    )


def load_trained(workdir: str):
    """Loads a backbone trained by `train_and_evaluate` from its workdir.

    Returns:
      `(model, variables, config)`: the linen model, its `{'params',
      'batch_stats'}` from the latest checkpoint, and the run's config. The
      model's outputs are `num_classes` scene logits followed by one logit per
      object concept.
    """
    import json

    import ml_collections

    if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(
            f"no trained backbone at {workdir!r} (expected config.json and ckpt/ "
            "from train.classifier); set --config.backbone"
        )
    with open(os.path.join(workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    num_outputs = _num_outputs(config.data)
    model = get_model(config.model.name, num_classes=num_outputs)
    size = config.data.image_size if config.data.name == "synthaerial" else 8
    dummy = np.zeros((1, size, size, 3), np.float32)
    tx = _make_tx(config.train)
    init = lambda key: training.create_train_state(model, tx, key, dummy)
    mesh = parallel.make_mesh()
    abstract = training.abstract_state(
        init, jax.random.key(0), parallel.replicated_sharding(mesh)
    )
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"))
    state = ckpt.restore(abstract)
    ckpt.close()
    if state is None:
        raise FileNotFoundError(f"no checkpoint under {workdir}/ckpt")
    return model, jax.device_get(state.variables()), config


def _make_tx(train_config) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(train_config.lr, train_config.steps)
    return optax.adamw(schedule, weight_decay=train_config.weight_decay)


def _num_outputs(data_config) -> int:
    if data_config.name == "synthaerial":
        from jaxcxai.data import synthaerial

        return len(synthaerial.SCENES) + len(synthaerial.CONCEPTS)
    return 10


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hostmem.keep_freed_memory()
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    cli.save_config(args.config, args.workdir)
    results = train_and_evaluate(args.config, args.workdir)
    print(results)


if __name__ == "__main__":
    main()
