"""Local concept embeddings (LoCE / GCPV): per-sample fits, vmapped and sharded.

A LoCE of one (image, concept, layer) is v in R^C, a bias-free 1x1 conv whose
projection sigmoid(v . a) reconstructs the concept mask (LoCE: Mikriukov et
al. 2023, arXiv 2311.14435).
`fit_one` is a pure `lax.scan` over optax AdamW steps for one sample; it is
vmapped over samples (`fit_batch`), over the concepts of one image
(`fit_concepts`), sharded over the mesh's `data` axis (`fit_sharded`) and
streamed over chunks (`fit_chunks`).

Bilinear upsampling is linear and channel-wise, so projecting at the native
h x w and upsampling the logit map, `A_h @ (v . a) @ A_w^T`, equals projecting
the upsampled activations (upsample="reference", the reference's order) at a
fraction of the cost: C*h*w + T*h*w + T^2*w multiply-adds per step instead of
C*T^2, and only native activations are ever materialized.

Deliberate difference: samples are independent problems, each with its own
AdamW state. The reference runs one AdamW over a (64, C) tensor, which is the
same thing (Adam is per-coordinate) up to the loss scale seen by epsilon;
`loss_scale=None` reproduces that scale. `fit_batched_reference` is the
reference's batched form, used to check the equivalence.

Every entry point rejects NaN / inf activations, targets or alphas with
`NonFiniteError` (naming the argument and the count; one reduction on device):
a NaN activation would give a NaN LoCE whose projection IoU reads as 0.
"""

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai import parallel
from jaxcxai.checks import NonFiniteError, check_finite
from jaxcxai.concepts.loce import objectives
from jaxcxai.concepts.loce.objectives import LoceConfig

# The projections and the per-sample loss live in `projection`.
from jaxcxai.concepts.loce.projection import (
    _alphas,
    _as_views,
    _sample_loss,
    _upsample_acts,
)

__all__ = [
    "default_micro_batch",
    "fit_batch",
    "fit_chunks",
    "fit_concepts",
    "fit_one",
    "fit_sharded",
    "gloce",
    "multilayer",
]


def fit_one(
    acts, target, alpha=None, *, config=LoceConfig(), key=None, return_losses=False
):
    """Fits one LoCE: `config.steps` AdamW steps as a `lax.scan`.

    Args:
      acts: (C, h, w) activations, or (V, C, h, w) for a multi-view LoCE
        (the same object on V backgrounds; view losses are summed).
      target: (H, W) or (V, H, W) soft target on the target grid.
      alpha: scalar or (V,) balance weights; None = 1 - mean(t > 0).
      config: a `LoceConfig` (static).
      key: PRNG key, only for random inits.
      return_losses: also return the (steps,) loss trajectory.

    Returns:
      (C,) embedding v (float32), and the losses if asked.
    """
    check_finite({"acts": acts, "target": target, "alpha": alpha})  # no-op traced
    acts, target, alpha = _as_views(acts, target, alpha)
    if config.upsample == "reference":
        acts = _upsample_acts(acts, target.shape[-2:], config.interp)
    elif config.upsample != "native":
        raise ValueError(
            f"upsample must be 'native' or 'reference', got {config.upsample!r}"
        )
    # Tie v0 to the inputs so that under shard_map the scan carry is "varying"
    # (with a constant carry, jax 0.11.2 silently gave wrong sharded fits).
    v0 = parallel.vary_like(
        objectives.init_vector(acts.shape[1], config, key), acts[0, :, 0, 0]
    )
    v, losses = objectives.minimize(
        lambda v, _: _sample_loss(v, acts, target, alpha, config=config), v0, config
    )
    return (v, losses) if return_losses else v


def _keys(key, n: int, config: LoceConfig):
    if config.init in ("zeros", "ones"):
        return None
    if key is None:
        raise ValueError(f"init={config.init!r} needs a PRNG key")
    return jax.random.split(key, n)


def default_micro_batch() -> int | None:
    """Samples vmapped together inside a sequential `lax.map` (None: all).

    On CPU the fit is bound by re-reading each sample's activations at every
    step; a few samples at a time keep them cache-resident for all steps
    (measured ~2x faster than one big vmap on 2 cores). Accelerators want the
    whole batch in one vmap.
    """
    return 8 if jax.default_backend() == "cpu" else None


def _fit_local(acts, targets, alphas, keys, config, shared_acts, micro_batch):
    def one(a, t, al, k):
        return fit_one(a, t, al, config=config, key=k)

    if shared_acts:
        in_axes = (None, 0, 0, None if keys is None else 0)
        return jax.vmap(one, in_axes=in_axes)(acts, targets, alphas, keys)
    n = targets.shape[0]
    if micro_batch is None or micro_batch >= n:
        in_axes = (0, 0, 0, None if keys is None else 0)
        return jax.vmap(one, in_axes=in_axes)(acts, targets, alphas, keys)
    if keys is None:
        return jax.lax.map(
            lambda x: one(*x, None), (acts, targets, alphas), batch_size=micro_batch
        )
    return jax.lax.map(
        lambda x: one(*x), (acts, targets, alphas, keys), batch_size=micro_batch
    )


_fit_many = jax.jit(
    _fit_local, static_argnames=("config", "shared_acts", "micro_batch")
)


def fit_batch(
    acts,
    targets,
    alphas=None,
    *,
    config=LoceConfig(),
    key=None,
    micro_batch: int | None | str = "auto",
):
    """`fit_one` vmapped over samples: (N, [V,] C, h, w) -> (N, C).

    Args:
      acts: (N, C, h, w) or (N, V, C, h, w) activations.
      targets: (N, H, W) or (N, V, H, W) soft targets.
      alphas: (N,) or (N, V); None = from the targets.
      config: `LoceConfig`.
      key: PRNG key for random inits (split per sample).
      micro_batch: samples per vmapped group inside a sequential map; "auto"
        = `default_micro_batch()`, None = one vmap over all samples. Results
        do not depend on it beyond float rounding.
    """
    acts = jnp.asarray(acts)
    check_finite({"acts": acts, "targets": targets, "alphas": alphas})
    targets, alphas = _alphas(targets, alphas)
    keys = _keys(key, targets.shape[0], config)
    mb = default_micro_batch() if micro_batch == "auto" else micro_batch
    return _fit_many(acts, targets, alphas, keys, config, False, mb)


def fit_concepts(acts, targets, alphas=None, *, config=LoceConfig(), key=None):
    """LoCEs of K concepts of one image: acts (C, h, w), targets (K, H, W) -> (K, C).

    The activations are shared (vmap in_axes None), so the K projections are
    one (K, C) x (C, h*w) matmul per step.
    """
    acts = jnp.asarray(acts)
    check_finite({"acts": acts, "targets": targets, "alphas": alphas})
    targets, alphas = _alphas(targets, alphas)
    keys = _keys(key, targets.shape[0], config)
    return _fit_many(acts, targets, alphas, keys, config, True, None)


@functools.cache
def _sharded_fn(config, mesh, with_keys, micro_batch):
    spec = jax.sharding.PartitionSpec(parallel.DATA_AXIS)

    def local(acts, targets, alphas, *keys):
        # Each device fits its own samples: no communication at all.
        return _fit_local(
            acts, targets, alphas, keys[0] if keys else None, config, False, micro_batch
        )

    n_in = 4 if with_keys else 3
    return jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=(spec,) * n_in, out_specs=spec)
    )


def fit_sharded(
    acts,
    targets,
    alphas=None,
    *,
    config=LoceConfig(),
    mesh: Mesh,
    key=None,
    micro_batch: int | None | str = "auto",
):
    """`fit_batch` with samples split over the mesh's `data` axis (shard_map).

    N need not divide by the device count: the batch is padded with zero
    samples (whose fit is discarded) and the result is returned unpadded.
    On several hosts every host passes the same global arrays and feeds its
    `host_slice` of them to the mesh.

    Returns:
      (N, C) LoCEs, as a `jax.Array` sharded over `data` (padding removed).
    """
    acts = np.asarray(acts)
    targets = np.asarray(targets, np.float32)
    check_finite({"acts": acts, "targets": targets, "alphas": alphas})
    n = acts.shape[0]
    alphas = np.asarray(
        objectives.alpha_from_target(targets) if alphas is None else alphas, np.float32
    )
    pad = (-n) % mesh.shape[parallel.DATA_AXIS]
    if pad:
        widths = lambda x: [(0, pad)] + [(0, 0)] * (x.ndim - 1)
        acts, targets, alphas = (np.pad(x, widths(x)) for x in (acts, targets, alphas))
    # Every host holds the global arrays; each feeds only its rows (several
    # hosts: `shard_batch` assembles the global array from per-host parts).
    rows = parallel.host_slice(n + pad)
    args = parallel.shard_batch((acts[rows], targets[rows], alphas[rows]), mesh)
    keys = _keys(key, n + pad, config)
    if keys is not None:
        # Key arrays cannot be placed on other hosts' devices: place the data.
        data = parallel.shard_batch(np.asarray(jax.random.key_data(keys))[rows], mesh)
        impl = jax.random.key_impl(keys)
        args = args + (jax.random.wrap_key_data(data, impl=impl),)
    mb = default_micro_batch() if micro_batch == "auto" else micro_batch
    out = _sharded_fn(config, mesh, keys is not None, mb)(*args)
    return out[:n]


def fit_chunks(
    chunks: Iterable, *, config=LoceConfig(), mesh: Mesh | None = None, key=None
) -> Iterator:
    """Streams fits over chunks of `(acts, targets)` or `(acts, targets, alphas)`.

    `acts` may be an array or a {layer: array} dict (one fit per layer, same
    targets); the yielded LoCEs have the same structure, as NumPy arrays.
    Chunk i uses `fold_in(key, i)` for random inits.
    """
    for i, chunk in enumerate(chunks):
        acts, targets, *rest = chunk
        alphas = rest[0] if rest else None
        k = None if key is None else jax.random.fold_in(key, i)

        def fit(a, where, targets=targets, alphas=alphas, k=k):
            try:
                if mesh is None:
                    out = fit_batch(a, targets, alphas, config=config, key=k)
                else:
                    out = fit_sharded(
                        a, targets, alphas, config=config, mesh=mesh, key=k
                    )
            except NonFiniteError as e:  # say which chunk (and layer)
                raise NonFiniteError(f"{where}{e.name}", e.count, e.size) from None
            return parallel.to_host(out)  # rows may span several hosts

        if isinstance(acts, Mapping):
            yield {
                name: fit(a, f"chunk {i} layer {name!r}: ") for name, a in acts.items()
            }
        else:
            yield fit(acts, f"chunk {i}: ")


def multilayer(
    loces: Mapping[str, jax.typing.ArrayLike], layers: Sequence[str] | None = None
):
    """ML-LoCE: per-layer (N, C_l) LoCEs concatenated (no normalization)."""
    layers = list(loces) if layers is None else list(layers)
    return jnp.concatenate([jnp.asarray(loces[name]) for name in layers], axis=-1)


def gloce(loces, labels) -> tuple[np.ndarray, jax.Array]:
    """GloCE: the plain, unnormalized mean LoCE per label.

    Returns:
      (classes (K,), means (K, C)) with classes sorted as `np.unique`.
    """
    classes, inv = np.unique(np.asarray(labels), return_inverse=True)
    sums = jax.ops.segment_sum(jnp.asarray(loces), jnp.asarray(inv), len(classes))
    counts = jnp.asarray(np.bincount(inv, minlength=len(classes)), sums.dtype)
    return classes, sums / counts[:, None]
