"""Foundation: sharded step == single-device step, exact resume, NaN stop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcxai import checkpoint, parallel, training
from jaxcxai.metric_writers import JsonlWriter, read_jsonl
from tests.tiny_models import TinyConvNet

BATCH = 16


def make_loss(model, nan_at_step=None):
    def loss_fn(params, batch_stats, batch, key):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            batch["x"],
            train=True,
            mutable=["batch_stats"],
        )
        xent = optax.softmax_cross_entropy_with_integer_labels(
            logits, batch["y"]
        ).mean()
        # A tiny key-dependent term checks that the step key is folded in.
        noise = 1e-3 * jnp.mean(jax.random.normal(key, logits.shape) * logits)
        if nan_at_step is not None:
            xent = jnp.where(batch["step"][0] == nan_at_step, jnp.nan, xent)
        loss = xent + noise
        return loss, (updates["batch_stats"], {"xent": xent, "noise": noise})

    return loss_fn


def batch_for(step, seed=0):
    rng = np.random.default_rng([seed, step])
    return {
        "x": rng.normal(size=(BATCH, 8, 8, 3)).astype(np.float32),
        "y": rng.integers(0, 4, size=BATCH).astype(np.int32),
        "step": np.full((BATCH,), step, np.int32),
    }


def init_fn(model, key):
    tx = optax.sgd(0.1, momentum=0.9)
    return training.create_train_state(
        model, tx, key, jnp.zeros((1, 8, 8, 3)), train=False
    )


def run_steps(mesh, n, key):
    model = TinyConvNet()
    state = training.init_state_sharded(
        functools.partial(init_fn, model),
        jax.random.key(0),
        parallel.replicated_sharding(mesh),
    )
    step = jax.jit(training.make_train_step(make_loss(model)))
    for s in range(n):
        state, metrics = step(state, parallel.shard_batch(batch_for(s), mesh), key)
    return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.multidevice
def test_sharded_step_equals_single_device():
    assert jax.device_count() == 8
    key = jax.random.key(1)
    single, m1 = run_steps(parallel.make_mesh(devices=jax.devices()[:1]), 3, key)
    sharded, m8 = run_steps(parallel.make_mesh(), 3, key)
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(sharded.params)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    for a, b in zip(
        jax.tree.leaves(single.batch_stats), jax.tree.leaves(sharded.batch_stats)
    ):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    np.testing.assert_allclose(m1["loss"], m8["loss"], atol=1e-6)


def _loop(workdir, num_steps, key, stop_after=None, nan_at_step=None):
    mesh = parallel.make_mesh()
    model = TinyConvNet()
    init = functools.partial(init_fn, model)
    repl = parallel.replicated_sharding(mesh)
    ckpt = checkpoint.Checkpointer(str(workdir / "ckpt"), save_every=2, keep=2)
    state = ckpt.restore(training.abstract_state(init, jax.random.key(0), repl))
    if state is None:
        state = training.init_state_sharded(init, jax.random.key(0), repl)
    total = num_steps if stop_after is None else stop_after
    state = training.train_loop(
        state,
        training.make_train_step(make_loss(model, nan_at_step)),
        lambda s: parallel.shard_batch(batch_for(s), mesh),
        key,
        num_steps=total,
        writer=JsonlWriter(str(workdir / "metrics.jsonl"), also_log=False),
        log_every=2,
        checkpointer=ckpt,
        progress=False,
    )
    ckpt.close()
    return jax.device_get(state)


def test_resume_matches_uninterrupted_run(tmp_path):
    key = jax.random.key(7)
    straight = _loop(tmp_path / "a", 6, key)
    _loop(tmp_path / "b", 6, key, stop_after=4)  # "interrupted" after step 4
    resumed = _loop(tmp_path / "b", 6, key)
    assert int(resumed.step) == 6
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    records = read_jsonl(str(tmp_path / "a" / "metrics.jsonl"))
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all(np.isfinite(r["loss"]) for r in records)
    # The resumed run continued at step 4, so it logged only the last interval.
    assert read_jsonl(str(tmp_path / "b" / "metrics.jsonl"))[-1]["step"] == 6


def test_nan_stops_run_naming_step_and_term(tmp_path):
    with pytest.raises(training.NonFiniteLossError) as err:
        _loop(tmp_path, 8, jax.random.key(0), nan_at_step=4)
    # Step index 4 is the 5th update; the first non-finite term in the
    # metrics dict order is the loss term that produced it.
    assert err.value.step == 4
    assert err.value.term == "xent"
    assert "step 4" in str(err.value) and "'xent'" in str(err.value)
    # Nothing past the NaN was checkpointed: the latest save is step 4's
    # interval boundary at the latest (states after update 4 are poisoned).
    steps = checkpoint.Checkpointer(str(tmp_path / "ckpt")).all_steps()
    assert max(steps) <= 4


@pytest.mark.multidevice
def test_batch_size_must_divide_devices():
    mesh = parallel.make_mesh()
    with pytest.raises(ValueError, match="12 is not divisible .* 8"):
        parallel.shard_batch(np.zeros((12, 2)), mesh)


def test_host_slices_partition_the_batch():
    parts = [parallel.host_slice(24, i, 3) for i in range(3)]
    covered = np.concatenate([np.arange(24)[p] for p in parts])
    np.testing.assert_array_equal(covered, np.arange(24))
    with pytest.raises(ValueError, match="hosts 5"):
        parallel.host_slice(24, 0, 5)
