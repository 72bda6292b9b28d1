"""Training a TopK SAE on more rows than fit in memory, chunk by chunk.

`fit_sae` consumes an iterable of row chunks, e.g. a feature cache's
`FeatureCache.iter_chunks(name)` (memory-mapped (n, ...) arrays; spatial
chunks (n, h, w, C) become n h w rows of C). Rows are buffered on the host;
every `batches_per_call * batch_size` buffered rows are shuffled and run as
one jitted `lax.scan` of `batches_per_call` train steps, so at most two
programs compile (that block and a single-batch one for the tail). The
shuffle is within a block: shuffle the cache order upstream (or use large
blocks) when chunks are sorted, e.g. by class. The tail batches run in
stream order; rows left over at the end (fewer than `batch_size`) are
dropped and reported. The decoder bias starts at the mean of the first
rows trained on, so the result does not depend on the chunking.

With `num_seeds` the same batches train S independent SAEs (vmapped states,
one program): the seed-stability study of a dictionary at the cost of one
pass over the data.
"""

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.concepts.discovery.common import as_rows, check_positive_int, host_rng
from jaxcxai.concepts.discovery.sae import create_sae_state, make_sae_train_step

__all__ = ["fit_sae"]


def _block_runner(dead_after, vmapped):
    step = make_sae_train_step(dead_after)

    def run(state, xs, key):
        def body(state, x):
            return step(state, {"x": x}, key)

        return jax.lax.scan(body, state, xs)

    if vmapped:
        run = jax.vmap(run, in_axes=(0, None, None))
    return jax.jit(run, donate_argnums=0)


def _iter_rows(chunks, epochs):
    for epoch in range(epochs):
        source = chunks() if callable(chunks) else chunks
        seen = 0
        for i, chunk in enumerate(source):
            rows = np.asarray(as_rows(chunk, f"chunks[{i}]"))
            seen += rows.shape[0]
            yield rows
        if not seen:
            raise ValueError(
                f"chunks yielded no rows in epoch {epoch}; pass a list or a "
                "callable returning a fresh iterator for epochs > 1"
            )


def fit_sae(
    chunks: Iterable | Callable[[], Iterable],
    key,
    *,
    num_latents,
    k,
    batch_size=4096,
    tx=None,
    learning_rate=1e-3,
    tied=False,
    dead_after=1000,
    batches_per_call=8,
    num_seeds=None,
    epochs=1,
):
    """Trains a TopK SAE (or S of them) streaming over chunks of rows.

    Args:
      chunks: iterable of (n, d) or (n, ..., C) arrays, or a callable
        returning a fresh iterable (needed for epochs > 1 over a generator).
      key: PRNG key (init and shuffling).
      num_latents: dictionary size m.
      k: active latents per row.
      batch_size: rows per step.
      tx: optax transformation (default `optax.adam(learning_rate)`).
      learning_rate: used when `tx` is None.
      tied: tie the encoder to the decoder.
      dead_after: steps without firing after which a latent is dead.
      batches_per_call: steps per jitted scan.
      num_seeds: optional S; trains S SAEs on the same batches (vmapped).
      epochs: passes over `chunks`.

    Returns:
      (state, history): the final `TrainState` (leaves with a leading S axis
      when `num_seeds` is set) and a dict of NumPy metric arrays per step,
      (steps,) or (S, steps), plus "rows_used" and "rows_dropped".

    Raises:
      ValueError: for bad sizes, non-finite chunks (naming the chunk) or
        when fewer than `batch_size` rows arrive.
    """
    check_positive_int(batch_size, "batch_size")
    check_positive_int(batches_per_call, "batches_per_call")
    check_positive_int(epochs, "epochs")
    if num_seeds is not None:
        check_positive_int(num_seeds, "num_seeds")
    tx = optax.adam(learning_rate) if tx is None else tx
    key_init, key_shuffle, key_step = jax.random.split(key, 3)
    shuffle = host_rng(key_shuffle)
    block = batches_per_call * batch_size
    runners = {}
    state, history, buffer, rows_used = None, [], [], 0

    def run(rows, g):
        nonlocal state, rows_used
        if state is None:
            # b_dec starts at the mean of the first rows trained on, so the
            # result does not depend on how the stream is chunked.
            def create(kk, mean=rows.mean(axis=0)):
                return create_sae_state(
                    kk, rows.shape[1], num_latents, k, tx, tied=tied, b_dec=mean
                )

            if num_seeds is None:
                state = create(key_init)
            else:
                state = jax.vmap(create)(jax.random.split(key_init, num_seeds))
        if g not in runners:
            runners[g] = _block_runner(dead_after, num_seeds is not None)
        if g > 1:
            rows = rows[shuffle.permutation(rows.shape[0])]
        xs = jnp.asarray(rows.reshape(g, batch_size, -1))
        state, metrics = runners[g](state, xs, key_step)
        history.append(metrics)
        rows_used += rows.shape[0]

    for rows in _iter_rows(chunks, epochs):
        buffer.append(rows)
        pending = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
        while pending.shape[0] >= block:
            run(pending[:block], batches_per_call)
            pending = pending[block:]
        buffer = [pending]
    pending = buffer[0] if buffer else np.zeros((0, 1), np.float32)
    n_tail = pending.shape[0] // batch_size
    if not history and not n_tail:
        raise ValueError(f"fit_sae needs at least batch_size={batch_size} rows")
    for i in range(n_tail):
        run(pending[i * batch_size : (i + 1) * batch_size], 1)
    axis = 0 if num_seeds is None else 1
    out = {
        name: np.concatenate([np.asarray(m[name]) for m in history], axis=axis)
        for name in history[0]
    }
    out["rows_used"] = rows_used
    out["rows_dropped"] = pending.shape[0] - n_tail * batch_size
    return state, out
