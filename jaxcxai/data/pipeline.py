"""A small NumPy input pipeline over random-access sources.

Works on any source with ``len`` and ``__getitem__`` (optionally ``__getitems__``):
a TFDS ``ArrayRecordDataSource``, `tfds_builder.load`'s source, or a plain dict of
arrays sharing a leading axis. Per epoch the global order is a permutation drawn
from ``(seed, epoch)`` only, identical on every host; it is cut into global batches
(the remainder is dropped) and each host takes its contiguous share of every global
batch, the layout `jaxcxai.parallel.shard_batch` assembles into global arrays. So
hosts are disjoint, together cover the epoch, and a run resumes exactly from a step
number.

    for batch in iterate(source, 256, seed=0, num_epochs=10, prefetch=2):
        batch = shard_batch(batch, mesh)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

import jax
import numpy as np

from jaxcxai.parallel import host_slice


def check_global_batch(
    global_batch_size: int,
    num_devices: int | None = None,
    process_count: int | None = None,
) -> None:
    """Raises ValueError unless the global batch splits over devices and hosts."""
    num_devices = jax.device_count() if num_devices is None else num_devices
    process_count = jax.process_count() if process_count is None else process_count
    if global_batch_size < 1:
        raise ValueError(f"global batch size must be positive, got {global_batch_size}")
    if global_batch_size % num_devices:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the device "
            f"count {num_devices}; use a multiple of {num_devices}."
        )
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the process "
            f"count {process_count}."
        )


def source_len(source) -> int:
    """Number of examples of a record source or a dict of arrays."""
    if isinstance(source, Mapping):
        lengths = {k: len(v) for k, v in source.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"dict source arrays differ in leading length: {lengths}")
        return next(iter(lengths.values()))
    return len(source)


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Full global batches per epoch (drop remainder)."""
    return num_examples // global_batch_size


def epoch_order(num_examples: int, epoch: int, *, seed: int, shuffle: bool = True):
    """Global example order of one epoch: a permutation from (seed, epoch) only."""
    if not shuffle:
        return np.arange(num_examples)
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(
    num_examples: int,
    global_batch_size: int,
    epoch: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
) -> np.ndarray:
    """This host's example indices for every step of an epoch.

    Returns:
        (steps, global_batch_size // process_count) int64 array; row s is this
        host's contiguous share of global batch s.
    """
    steps = steps_per_epoch(num_examples, global_batch_size)
    if steps == 0:
        raise ValueError(
            f"source has {num_examples} examples, fewer than one global batch of "
            f"{global_batch_size}"
        )
    order = epoch_order(num_examples, epoch, seed=seed, shuffle=shuffle)
    glob = order[: steps * global_batch_size].reshape(steps, global_batch_size)
    return glob[:, host_slice(global_batch_size, process_index, process_count)]


def fetch(source, indices: Sequence[int], keys: Iterable[str] | None = None) -> dict:
    """Gathers examples into a dict of stacked NumPy arrays, (B, ...) per key."""
    idx = np.asarray(indices, np.int64)
    if isinstance(source, Mapping):
        keys = source.keys() if keys is None else keys
        return {k: np.asarray(source[k])[idx] for k in keys}
    if hasattr(source, "__getitems__"):
        examples = source.__getitems__(idx.tolist())
    else:
        examples = [source[int(i)] for i in idx]
    keys = examples[0].keys() if keys is None else keys
    return {k: np.stack([np.asarray(ex[k]) for ex in examples]) for k in keys}


def iterate(
    source,
    global_batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = 1,
    start_step: int = 0,
    keys: Iterable[str] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    num_devices: int | None = None,
    prefetch: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields this host's batches, epoch after epoch.

    Args:
        source: random-access source or dict of arrays.
        global_batch_size: batch over all hosts; must divide by the device count
            and the process count.
        seed: shuffling seed (same on every host).
        shuffle: False keeps the source order (evaluation).
        num_epochs: number of epochs, or None to repeat forever.
        start_step: global step to resume from (skips earlier batches unread).
        keys: subset of fields to load (default: all).
        process_index, process_count: host identity (default: from jax); override
            to test multi-host splits on one machine.
        num_devices: global device count (default `jax.device_count()`).
        prefetch: if > 0, load up to this many batches ahead in a background thread.

    Yields:
        Dicts of NumPy arrays with leading axis global_batch_size // process_count.
    """
    check_global_batch(global_batch_size, num_devices, process_count)
    n = source_len(source)
    steps = steps_per_epoch(n, global_batch_size)
    if steps == 0:
        raise ValueError(
            f"source has {n} examples, fewer than one global batch of {global_batch_size}"
        )
    keys = None if keys is None else list(keys)

    def gen():
        epoch, skip = divmod(start_step, steps)
        while num_epochs is None or epoch < num_epochs:
            rows = batch_indices(
                n,
                global_batch_size,
                epoch,
                seed=seed,
                shuffle=shuffle,
                process_index=process_index,
                process_count=process_count,
            )
            for row in rows[skip:]:
                yield fetch(source, row, keys)
            epoch, skip = epoch + 1, 0

    return prefetch_iterator(gen(), prefetch) if prefetch > 0 else gen()


_DONE = object()


def prefetch_iterator(iterator: Iterator, size: int = 2) -> Iterator:
    """Runs ``iterator`` in a daemon thread, buffering up to ``size`` items.

    Exceptions raised by the producer are re-raised in the consumer. Closing the
    returned generator (or dropping it) stops the producer.
    """
    buf: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buf.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 -- forwarded to the consumer
            put(e)

    thread = threading.Thread(target=produce, daemon=True, name="jaxcxai-prefetch")
    thread.start()

    def consume():
        try:
            while True:
                item = buf.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    return consume()
