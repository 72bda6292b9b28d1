"""`sharded_step`: data-parallel train-step throughput on 1, 2, 4, 8 devices.

Ours is the step sharded over all devices (up to 8); the baseline is the same
jitted step on one device. Both see the same global batches from the same
initial state; agreement is the max parameter difference after the timed
steps. On a CPU host the devices are fake (they share the cores), so the table
shows the overhead of sharding rather than a speed-up; on a GPU/TPU host it
shows real scaling.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai import parallel, training
from jaxcxai.models.cnn import SmallCNN


def _loss(model):
    def loss_fn(params, batch_stats, batch, key):
        del key
        (logits, _), updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            batch["x"],
            train=True,
            mutable=["batch_stats"],
        )
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        return xent.mean(), (updates["batch_stats"], {"xent": xent.mean()})

    return loss_fn


def _time_steps(num_devices, batches, steps, repeats):
    mesh = parallel.make_mesh(devices=jax.devices()[:num_devices])
    model = SmallCNN(num_classes=10)
    x0 = jnp.zeros((1,) + batches[0]["x"].shape[1:])

    def init(key):
        return training.create_train_state(
            model, optax.sgd(0.05, momentum=0.9), key, x0
        )

    repl = parallel.replicated_sharding(mesh)
    step = jax.jit(training.make_train_step(_loss(model)))
    placed = [parallel.shard_batch(b, mesh) for b in batches]
    key = jax.random.key(0)
    best = float("inf")
    for _ in range(repeats):
        state = training.init_state_sharded(init, jax.random.key(0), repl)
        state, m = step(state, placed[0], key)  # compile + warm up
        jax.block_until_ready(m)
        state = training.init_state_sharded(init, jax.random.key(0), repl)
        t0 = time.perf_counter()
        for s in range(steps):
            state, m = step(state, placed[s % len(placed)], key)
        jax.block_until_ready((state, m))
        best = min(best, time.perf_counter() - t0)
    return best / steps, jax.device_get(state.params)


def run(quick: bool) -> dict:
    size, batch, steps = (32, 64, 10) if quick else (64, 256, 20)
    counts = [n for n in (1, 2, 4, 8) if n <= jax.device_count()]
    rng = np.random.default_rng(0)
    batches = [
        {
            "x": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
            "y": rng.integers(0, 10, size=batch).astype(np.int32),
        }
        for _ in range(4)
    ]
    table, params = {}, {}
    for n in counts:
        sec, params[n] = _time_steps(n, batches, steps, repeats=2)
        table[n] = {"step_s": sec, "steps_per_s": 1 / sec, "images_per_s": batch / sec}
        print(f"{n} device(s): {1 / sec:8.2f} steps/s  {batch / sec:9.1f} images/s")
    top = counts[-1]
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[top]))
    )
    return {
        "ours_s": table[top]["step_s"],
        "baseline": "same jitted train step on 1 device",
        "baseline_s": table[1]["step_s"],
        "agreement": {"max_abs_param_diff": diff, "devices_compared": [1, top]},
        "agreement_ok": diff <= 1e-5,
        "params": {
            "image_size": size,
            "global_batch": batch,
            "steps": steps,
            "model": "SmallCNN",
            "optimizer": "sgd(0.05, momentum=0.9)",
        },
        "extra": {"scaling": {str(k): v for k, v in table.items()}},
    }
