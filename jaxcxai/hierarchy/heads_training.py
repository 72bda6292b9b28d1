"""Training the two-tower heads (`heads`) with symmetric InfoNCE.

CLIP's recipe (Radford et al. 2021, §2.3) on frozen features: each step
draws a batch of distinct images with one of their captions, the loss is
`heads.info_nce` over the global batch with the learned temperature, AdamW
updates both heads. The step follows the repo's contract
`train_step(state, batch, key) -> (state, metrics)`
(`jaxcxai.training.make_train_step`) and runs data-parallel over the `data`
axis of a `jax.sharding` mesh: parameters replicated, each step's batch
gathered on device and split over `data`, jit inserting the collectives,
so the sharded loss equals the single-device one. Steps run in chunks of a
`jax.lax.scan` (one dispatch per chunk).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai import parallel
from jaxcxai.checks import check_finite
from jaxcxai.hierarchy.heads import FeatureNorm, HeadsFit, TwoTower, info_nce
from jaxcxai.training import state as train_state
from jaxcxai.training.loop import NonFiniteLossError

__all__ = ["batch_indices", "fit", "host_rng", "init_params"]


def host_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key's bits (host-side draws)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).ravel().tolist())


def batch_indices(key, n: int, k: int, batch_size: int, steps: int):
    """Which pairs each step trains on.

    Each step draws `batch_size` distinct images (so no image is its own
    negative) and one of its `k` captions, uniformly. Drawn on the host with
    NumPy from the key's bits (a jitted permutation per step costs seconds
    of compilation on CPU for nothing).

    Returns:
      (image (steps, B) int32, caption (steps, B) int32).
    """
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must lie in [1, {n}] (the images), got {batch_size}"
        )
    rng = host_rng(key)
    img = np.argsort(rng.random((steps, n)), axis=1)[:, :batch_size]
    cap = rng.integers(0, k, size=(steps, batch_size))
    return img.astype(np.int32), cap.astype(np.int32)


def init_params(model: TwoTower, key, image_dim: int, text_dim: int) -> dict:
    """Initial parameters drawn on the host: Dense kernels N(0, 1/fan_in)
    (the variance of flax's LeCun-normal default, untruncated), biases 0,
    t = log(1/T0).

    NumPy rather than `model.init`: on CPU, compiling init's threefry code
    costs about a second per parameter (`jaxcxai.models.zoo.host_init`).
    """
    dummy = (jax.ShapeDtypeStruct((1, image_dim), jnp.float32),
             jax.ShapeDtypeStruct((1, text_dim), jnp.float32))  # fmt: skip
    abstract = jax.eval_shape(model.init, jax.random.key(0), *dummy)["params"]
    rng = host_rng(key)

    def draw(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.normal(size=leaf.shape) / np.sqrt(leaf.shape[0])).astype(
                np.float32
            )
        if name == "log_scale":
            return np.full(
                leaf.shape, math.log(1.0 / model.init_temperature), np.float32
            )
        return np.zeros(leaf.shape, np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _loss_fn(model):
    def loss_fn(params, batch_stats, batch, key):
        del key  # deterministic heads
        zi, zt, scale = model.apply({"params": params}, batch["image"], batch["text"])
        loss = info_nce(zi, zt, scale)
        hit = jnp.argmax(zi @ zt.T, axis=1) == jnp.arange(zi.shape[0])
        metrics = {"info_nce": loss, "logit_scale": scale, "i2t_top1": hit.mean()}
        return loss, (batch_stats, metrics)

    return loss_fn


def _check_features(image, text):
    image, text = np.asarray(image), np.asarray(text)
    if text.ndim == 2:
        text = text[:, None]
    if image.ndim != 2 or text.ndim != 3 or text.shape[0] != image.shape[0]:
        raise ValueError(
            "image features must be (N, Di) and text features (N, K, Dt) or "
            f"(N, Dt) for the same N, got {image.shape} and {text.shape}"
        )
    check_finite({"image features": image, "text features": text})
    return image, text


# One model and one optax object per setting: the state's static fields
# (`apply_fn` is a bound method, compared by identity) are then equal across
# fits and the cached, compiled step is reused.
@functools.cache
def _two_tower(dim: int, hidden: int) -> TwoTower:
    return TwoTower(dim=dim, hidden=hidden)


@functools.cache
def _adamw(lr: float, weight_decay: float):
    return optax.adamw(lr, weight_decay=weight_decay)


@functools.cache
def _chunk_fn(model: TwoTower, mesh, compiler_options: tuple = ()):
    """`steps` train steps in one jitted scan; the batch of each step is
    gathered on device from the replicated features and split over `data`.
    Cached per (model, mesh, options): repeated fits compile once."""
    train_step = train_state.make_train_step(_loss_fn(model))
    batch_sharding = parallel.data_sharding(mesh)

    def chunk(state, x_img, x_txt, img_idx, cap_idx, key):
        def body(state, idx):
            i, c = idx
            batch = {"image": x_img[i], "text": x_txt[i, c]}
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return train_step(state, batch, key)

        return jax.lax.scan(body, state, (img_idx, cap_idx))

    return jax.jit(
        chunk, donate_argnums=0, compiler_options=dict(compiler_options) or None
    )


def fit(key, image, text, *, dim=128, hidden=0, steps=300, batch_size=64, lr=1e-3,
        weight_decay=1e-4, mesh=None, chunk=50, compiler_options=None,
        progress=False) -> HeadsFit:  # fmt: skip
    """Trains the two projection heads with symmetric InfoNCE.

    Args:
      key: PRNG key (initialisation and pair sampling).
      image: (N, Di) frozen image features.
      text: (N, K, Dt) frozen features of K captions per image (or (N, Dt)).
      dim, hidden: `TwoTower` widths.
      steps: AdamW steps; batch_size: pairs per step (global, a multiple of
        the mesh's `data` size, at most N).
      lr, weight_decay: AdamW settings.
      mesh: mesh with a `data` axis (default `parallel.make_mesh()`).
      chunk: steps per jitted call (`jax.lax.scan` of the train step: one
        dispatch per chunk instead of per step).
      compiler_options: XLA options of the step's jit (e.g.
        {"xla_backend_optimization_level": 0}: faster compiles in CI).
      progress: print the loss after each chunk.

    Raises:
      ValueError: bad shapes or batch size; NonFiniteError: NaN/inf features;
      NonFiniteLossError: the loss diverged (names the step).
    """
    image, text = _check_features(image, text)
    if steps < 1 or chunk < 1:
        raise ValueError(f"steps and chunk must be >= 1, got {steps}, {chunk}")
    mesh = parallel.make_mesh() if mesh is None else mesh
    parallel.check_batch_size(batch_size, mesh)
    k_init, k_batch, k_step = jax.random.split(key, 3)
    img_idx, cap_idx = batch_indices(
        k_batch, len(image), text.shape[1], batch_size, steps
    )
    inorm, tnorm = FeatureNorm.of(image), FeatureNorm.of(text)
    model = _two_tower(int(dim), int(hidden))
    tx = _adamw(float(lr), float(weight_decay))
    replicated = parallel.replicated_sharding(mesh)
    params = init_params(model, k_init, image.shape[1], text.shape[2])
    state = jax.device_put(train_state.TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats={},
        opt_state=tx.init(params), apply_fn=model.apply, tx=tx), replicated)  # fmt: skip
    run = _chunk_fn(model, mesh, tuple(sorted((compiler_options or {}).items())))
    x_img, x_txt = jax.device_put((inorm(image), tnorm(text)), replicated)
    history = []
    with jax.set_mesh(mesh):
        for s in range(0, steps, chunk):
            idx = jax.device_put(
                (img_idx[s : s + chunk], cap_idx[s : s + chunk]), replicated
            )
            state, metrics = run(state, x_img, x_txt, *idx, k_step)
            history.append(metrics)  # stays on device until the end
            if progress:
                print(f"[heads] step {min(s + chunk, steps)}/{steps}: InfoNCE "
                      f"{float(metrics['info_nce'][-1]):.3f}", flush=True)  # fmt: skip
    history = {
        k: np.concatenate([np.asarray(h[k]) for h in history]) for k in history[0]
    }
    bad = np.flatnonzero(~np.isfinite(history["info_nce"]))
    if bad.size:
        raise NonFiniteLossError(
            int(bad[0]), "info_nce", float(history["info_nce"][bad[0]])
        )
    return HeadsFit(model, jax.device_get(state.params), inorm, tnorm,
                    history["info_nce"].astype(np.float32),
                    float(history["logit_scale"][-1]))  # fmt: skip
