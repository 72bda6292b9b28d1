"""MC-dropout estimators: the tabular MLP (mutual information) and the CNN.

The gating paper's neural estimators (arXiv:2603.29915 §4.2) keep dropout active at test time and treat T = 50 stochastic passes as
the members of an ensemble (Gal & Ghahramani 2016). The tabular MLP
d → 128 → 64 → K (Dense-BatchNorm-ReLU-Dropout(0.3) per hidden layer) reports
the mutual information of the passes; the image CNN reports the variance of
its softmax across passes. Here the passes are one `vmap` over dropout keys;
the masks come from a counter-based hash (`masks`), 10-15x cheaper on a CPU
than threefry, which stays available (`dropout_rng="threefry"`).

BatchNorm: by default it stays in eval mode (running statistics), so each
sample's U_epi depends on that sample alone. The reference instead switches
BatchNorm to train mode during MC-dropout, which normalises with the batch's
statistics and overwrites the running statistics on every call (checked by
running it); `mc_dropout_uncertainty(..., batchnorm_train=True)` reproduces that,
running the passes in sequence and returning the updated variables.

The MLP is trained by `jaxcxai.uncertainty.ensembles.train_mlp` (one model,
or M members at once under `vmap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty.entropy import (
    Estimate,
    mutual_information_estimate,
    variance_estimate,
)
from jaxcxai.uncertainty.masks import Dropout

__all__ = [
    "ROW_CHUNK",
    "MLP",
    "DropoutCNN",
    "mc_dropout_probs",
    "mc_dropout_uncertainty",
    "cnn_mc_variance",
]

ROW_CHUNK = 256  # rows per step of the MC passes: T x 256 x 128 floats ~ 6.5 MB


class MLP(nn.Module):
    """The paper's tabular MLP d → 128 → 64 → K.

    Attributes:
      num_classes: K.
      features: hidden widths.
      dropout_rate: dropout after each hidden ReLU.
      batchnorm: Dense-BatchNorm-ReLU-Dropout blocks (PyTorch's BatchNorm1d
        defaults: Flax momentum 0.9, epsilon 1e-5).
      dropout_rng: "hash" (`masks.hash_bernoulli`, the fast default) or
        "threefry" (flax's `jax.random.bernoulli`).

    Call: `(x (N, d), train=False, mc_dropout=False, row_offset=0) ->
    (logits (N, K), {"hidden1": (N, 128), "hidden2": (N, 64)})`. `train`
    uses batch statistics and dropout; `mc_dropout` enables dropout only;
    `row_offset`: x is rows [r, r + N) of a bigger batch (hash masks of
    that batch's rows, see `masks.Dropout`).
    """

    num_classes: int
    features: Sequence[int] = (128, 64)
    dropout_rate: float = 0.3
    batchnorm: bool = True
    dropout_rng: str = "hash"

    @nn.compact
    def __call__(self, x, train: bool = False, mc_dropout: bool = False, row_offset=0):
        acts = {}
        for i, width in enumerate(self.features, start=1):
            x = nn.Dense(width, name=f"dense{i}")(x)
            if self.batchnorm:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    name=f"bn{i}",
                )(x)
            x = nn.relu(x)
            x = Dropout(
                self.dropout_rate,
                deterministic=not (train or mc_dropout),
                rng=self.dropout_rng,
            )(x, row_offset=row_offset)
            acts[f"hidden{i}"] = x
        return nn.Dense(self.num_classes, name="head")(x), acts


class DropoutCNN(nn.Module):
    """The paper's image CNN: conv blocks with channel dropout, GAP, dropout.

    Each block is Conv 3×3 (pad 1) - ReLU - MaxPool 2×2 - Dropout2d; then
    global average pooling, Dropout and a linear head. The paper's widths are
    (32, 64, 128); for 8×8 digits use e.g. `channels=(8, 16, 32)` with
    `pools=(True, True, False)`.

    Attributes:
      num_classes: K.
      channels: output channels of the blocks.
      pools: max-pool after each block (default: every block).
      dropout_rate: rate of both dropouts.
      dropout_rng: "hash" (default) or "threefry" (see `MLP`).

    Call: `(images (N, H, W, C), train=False, mc_dropout=False,
    row_offset=0) -> (logits (N, K), {"block1", ..., "pool": (N,
    channels[-1])})`; `row_offset` as in `MLP`.
    """

    num_classes: int
    channels: Sequence[int] = (32, 64, 128)
    pools: Sequence[bool] | None = None
    dropout_rate: float = 0.3
    dropout_rng: str = "hash"

    @nn.compact
    def __call__(self, x, train: bool = False, mc_dropout: bool = False, row_offset=0):
        det = not (train or mc_dropout)
        pools = self.pools or (True,) * len(self.channels)
        acts = {}
        for i, (width, pool) in enumerate(zip(self.channels, pools), start=1):
            x = nn.relu(nn.Conv(width, (3, 3), padding=1, name=f"conv{i}")(x))
            if pool:
                x = nn.max_pool(x, (2, 2), (2, 2))
            # Dropout2d drops whole channels: one mask per (sample, channel).
            x = Dropout(
                self.dropout_rate, (1, 2), deterministic=det, rng=self.dropout_rng
            )(x, row_offset=row_offset)
            acts[f"block{i}"] = x
        x = acts["pool"] = jnp.mean(x, axis=(1, 2))
        x = Dropout(self.dropout_rate, deterministic=det, rng=self.dropout_rng)(
            x, row_offset=row_offset
        )
        return nn.Dense(self.num_classes, name="head")(x), acts


def mc_dropout_probs(
    model: nn.Module,
    variables: dict,
    x: jax.Array,
    key: jax.Array,
    num_passes: int = 50,
    row_chunk: int | None = None,
) -> jax.Array:
    """Softmax of `num_passes` dropout passes, vmapped over keys (eval-mode BN).

    Args:
      model: `MLP` or `DropoutCNN` (any module with the `mc_dropout` flag;
        with `row_chunk`, also a `row_offset` argument).
      variables: `{"params", "batch_stats"?}`.
      x: (N, ...) inputs.
      key: PRNG key; pass t uses `split(key, num_passes)[t]`.
      num_passes: T.
      row_chunk: rows per step of a loop over rows, each step running all T
        passes of its rows; None: all rows at once. With the hash masks
        (`dropout_rng="hash"`) every row keeps its masks (the steps pass
        their `row_offset`), so the result equals the unchunked one up to
        float rounding; the T x rows x width activations of a step stay in
        cache (the paper's MLP on 10k rows: ~2x faster on a 2-core CPU).
        Threefry masks cannot be split by rows: they run unchunked.

    Returns:
      (T, N, K) float32 probabilities.
    """
    if row_chunk is not None and not (int(row_chunk) == row_chunk and row_chunk >= 1):
        raise ValueError(
            f"row_chunk must be a positive integer or None, got {row_chunk}"
        )
    keys = jax.random.split(key, num_passes)
    n = x.shape[0]

    def passes(xs, offset=None):
        extra = {} if offset is None else {"row_offset": offset}

        def one(k):
            logits, _ = model.apply(
                variables, xs, mc_dropout=True, rngs={"dropout": k}, **extra
            )
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

        return jax.vmap(one)(keys)

    hashed = getattr(model, "dropout_rng", "hash") == "hash"
    if row_chunk is None or row_chunk >= n or not hashed:
        return passes(x)
    steps = -(-n // row_chunk)
    pad = jnp.pad(x, [(0, steps * row_chunk - n)] + [(0, 0)] * (x.ndim - 1))
    chunks = pad.reshape((steps, row_chunk) + x.shape[1:])
    offsets = jnp.arange(steps, dtype=jnp.int32) * row_chunk
    probs = jax.lax.map(lambda a: passes(*a), (chunks, offsets))  # (S, T, c, K)
    probs = jnp.moveaxis(probs, 1, 0).reshape(num_passes, steps * row_chunk, -1)
    return probs[:, :n]


def _probs_train_bn(model, variables, x, key, num_passes):
    # Reference behaviour: passes in sequence, each normalising with the
    # batch's statistics and updating the running ones (stateful).
    def one(stats, k):
        (logits, _), upd = model.apply(
            {**variables, "batch_stats": stats},
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": k},
        )
        return upd["batch_stats"], jax.nn.softmax(logits.astype(jnp.float32), -1)

    keys = jax.random.split(key, num_passes)
    stats, probs = jax.lax.scan(one, variables["batch_stats"], keys)
    return probs, {**variables, "batch_stats": stats}


def mc_dropout_uncertainty(
    model: nn.Module,
    variables: dict,
    x: jax.Array,
    key: jax.Array,
    *,
    num_passes: int = 50,
    batchnorm_train: bool = False,
    row_chunk: int | None = ROW_CHUNK,
) -> Estimate | tuple[Estimate, dict]:
    """MC-dropout U_epi as the mutual information of T passes (the MLP's).

    Args:
      model: `MLP` (or any module with the `mc_dropout`/`train` flags).
      variables: `{"params", "batch_stats"}`.
      x: (N, d) inputs.
      key: PRNG key of the dropout masks.
      num_passes: T (the paper: 50).
      batchnorm_train: the reference's behaviour: BatchNorm in train mode
        (batch statistics, so a sample's U depends on the batch) and the
        running statistics updated by every pass. Stateful: the result is
        then `(estimate, updated_variables)`.
      row_chunk: rows per step (`mc_dropout_probs`; None: all at once).
        The masks, so the result, do not depend on it (hash masks). Not
        used with `batchnorm_train`, whose batch statistics need every row.

    Returns:
      `Estimate` of (N,) mutual information, (N,) H(p̄), (N, K) p̄; with
      `batchnorm_train`, a tuple with the updated variables.

    References:
      Gal & Ghahramani, "Dropout as a Bayesian approximation: representing
      model uncertainty in deep learning", ICML 2016; arXiv:2603.29915 §4.2.
    """
    check_finite({"x": x})
    if batchnorm_train:
        probs, new_vars = jax.jit(_probs_train_bn, static_argnums=(0, 4))(
            model, variables, x, key, num_passes
        )
        return mutual_information_estimate(probs), new_vars
    probs = jax.jit(mc_dropout_probs, static_argnums=(0, 4, 5))(
        model, variables, x, key, num_passes, row_chunk
    )
    return mutual_information_estimate(probs)


def cnn_mc_variance(
    model: nn.Module,
    variables: dict,
    images: jax.Array,
    key: jax.Array,
    *,
    num_passes: int = 50,
    ddof: int = 0,
) -> Estimate:
    """Image MC-dropout U_epi: softmax variance across passes, class-averaged.

    Args:
      model: `DropoutCNN`.
      variables: `{"params"}`.
      images: (N, H, W, C).
      key: PRNG key of the dropout masks.
      num_passes: T (the paper: 50).
      ddof: variance normalisation (0: population; the reference's choice is
        not pinned down, see the report).

    Returns:
      `Estimate` of (N,) variance, (N,) H(p̄), (N, K) p̄.

    References:
      Gal & Ghahramani 2016; arXiv:2603.29915 §4.2 (image experiment).
    """
    check_finite({"images": images})
    probs = jax.jit(mc_dropout_probs, static_argnums=(0, 4))(
        model, variables, images, key, num_passes
    )
    return variance_estimate(probs, ddof)
