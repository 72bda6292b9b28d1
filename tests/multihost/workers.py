"""Worker functions run by `harness.run_jobs`, one per multi-host path.

Each worker is written once and runs unchanged in every layout (1 process x 8
devices, 2 processes x 4 devices): it builds the global mesh over
`jax.devices()`, feeds each host only its `parallel.host_slice` of every
global batch or database, and returns globally gathered NumPy values, so the
results of the two layouts can be compared value for value. Workers take a
JSON-able dict and return a flat dict of NumPy arrays.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from jaxcxai import checkpoint, parallel, training
from jaxcxai.metrics import retrieval
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.training import classify

# Tiny classifier problem: 3 scene classes plus 4 multi-label concepts.
NUM_CLASSES, NUM_LABELS, IMAGE = 3, 4, 8
GLOBAL_BATCH = 16


def _flatten(prefix: str, tree) -> dict[str, np.ndarray]:
    """`{prefix/path/to/leaf: array}` of a pytree of host arrays."""
    return {
        f"{prefix}/{jax.tree_util.keystr(path, simple=True, separator='/')}": (
            np.asarray(leaf)
        )
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _gather(tree):
    """Global values of (possibly cross-host) arrays, as NumPy on every host."""
    return multihost_utils.process_allgather(tree, tiled=True)


def _perturb(args: dict, x: np.ndarray) -> np.ndarray:
    """Adds `args["perturb"]` on process `args["perturb_process"]` only.

    Lets a test check that the equality tests can fail: one host's data
    differs from what the single-process run sees.
    """
    if args.get("perturb") and jax.process_index() == args.get("perturb_process", 1):
        return x + np.asarray(args["perturb"], x.dtype)
    return x


def _classifier_batch(step: int, seed: int) -> dict[str, np.ndarray]:
    """The global batch of `step` (every host derives the same one)."""
    rng = np.random.default_rng([seed, step])
    return {
        "image": rng.integers(0, 256, (GLOBAL_BATCH, IMAGE, IMAGE, 3), np.uint8),
        "label": rng.integers(0, NUM_CLASSES, GLOBAL_BATCH).astype(np.int32),
        "multilabel": rng.random((GLOBAL_BATCH, NUM_LABELS)) < 0.4,
    }


def _preprocess(images):
    return images.astype(jnp.float32) / 255.0 - 0.5


class _LossRecorder:
    """A metric writer that keeps the logged losses (every step: log_every=1)."""

    def __init__(self):
        self.losses = []

    def write_scalars(self, step, scalars):
        self.losses.append(scalars["loss"])


def train_classifier(args: dict) -> dict[str, np.ndarray]:
    """A few Adam steps of `SmallCNN` with the repo's trainer, data-parallel.

    Uses `training.create_train_state`, `classify.classification_loss_fn`
    (softmax + multi-label BCE, random flips keyed by the step),
    `training.make_train_step` and `training.train_loop` over the global
    8-device mesh; BatchNorm statistics are over the global batch, so every
    step needs cross-host reductions.

    Args:
      args: `steps` (total), `seed`; optional `ckpt_dir` and `save_at` (save
        collectively with `checkpoint.Checkpointer` at that step and at the
        end), `resume_dir` and `resume_step` (restore that step, written by
        any layout, then continue to `steps`), `perturb` and
        `perturb_process` (see `_perturb`).

    Returns:
      `params/...`, `batch_stats/...` after `steps`; `mid/params/...`,
      `mid/batch_stats/...`, `mid/opt_state/...` at `save_at` (or as
      restored); `loss` per step run here; `step`.
    """
    mesh = parallel.make_mesh()
    model = SmallCNN(num_classes=NUM_CLASSES + NUM_LABELS, widths=(4, 8, 8))
    tx = optax.adam(3e-3)

    def init(key):
        dummy = jnp.zeros((1, IMAGE, IMAGE, 3))
        return training.create_train_state(model, tx, key, dummy, train=False)

    repl = parallel.replicated_sharding(mesh)
    key0 = jax.random.key(args["seed"])
    if args.get("resume_dir"):
        restorer = checkpoint.Checkpointer(args["resume_dir"])
        state = restorer.restore(
            training.abstract_state(init, key0, repl), step=args["resume_step"]
        )
        restorer.close()
    else:
        state = training.init_state_sharded(init, key0, repl)
    rows = parallel.host_slice(GLOBAL_BATCH)

    def batch_fn(step):
        batch = {k: v[rows] for k, v in _classifier_batch(step, args["seed"]).items()}
        batch["image"] = _perturb(args, batch["image"])
        return parallel.shard_batch(batch, mesh)

    loss_fn = classify.classification_loss_fn(model.apply, _preprocess, NUM_CLASSES)
    recorder = _LossRecorder()
    run = functools.partial(
        training.train_loop,
        train_step=training.make_train_step(loss_fn),
        batch_fn=batch_fn,
        key=jax.random.key(args["seed"] + 1),
        writer=recorder,
        log_every=1,
        progress=False,
    )
    ckpt = None
    if args.get("ckpt_dir"):
        ckpt = checkpoint.Checkpointer(args["ckpt_dir"], save_every=args["save_at"])
    if args.get("save_at") and not args.get("resume_dir"):
        state = run(state, num_steps=args["save_at"], checkpointer=ckpt)
    # Gathered now: the next step donates these buffers.
    mid = _gather(
        {
            "params": state.params,
            "batch_stats": state.batch_stats,
            "opt_state": state.opt_state,
        }
    )
    state = run(state, num_steps=args["steps"], checkpointer=ckpt)
    if ckpt is not None:
        ckpt.close()
    final = _gather({"params": state.params, "batch_stats": state.batch_stats})
    return {
        **_flatten("params", final["params"]),
        **_flatten("batch_stats", final["batch_stats"]),
        **_flatten("mid", mid),
        "loss": np.asarray(recorder.losses, np.float32),
        "step": np.asarray(_gather(state.step)),
    }


def retrieval_eval(args: dict) -> dict[str, np.ndarray]:
    """Hash codes, mAP and Hamming top-k over a database sharded across hosts.

    Each host holds only its `host_slice` of the database features; the
    hash projection and the query-database Hamming distances run under jit
    on the global mesh (database rows split over all hosts' devices). The
    codes and distances are then gathered for the NumPy metrics
    (`retrieval.mean_average_precision`, `retrieval.average_precision`) and
    `hamming_topk`.

    Args:
      args: `seed`, `num_db`, `num_queries`, `dim`, `bits`, `k`; optional
        `perturb`, `perturb_process` (added to one host's features).

    Returns:
      `db_codes`, `dist` (device distances), `map@...` values,
      `ap_expected` (per query), `topk_dist`, `topk_idx` (`hamming_topk` on
      each host's devices), `dev_topk_dist`, `dev_topk_idx` (top-k on the
      global mesh in the jitted step), and `global_topk_dist`,
      `global_topk_idx` (`hamming_topk` over the global mesh) or, if that
      raised, `global_topk_error`.
    """
    # Imported here: the `jaxcxai.hashing` package pulls in scikit-learn,
    # 2 s of start-up that the other workers' processes need not pay.
    from jaxcxai.hashing.search import hamming_topk

    mesh = parallel.make_mesh()
    rng = np.random.default_rng(args["seed"])
    n, q, dim, bits, k = (
        args[s] for s in ("num_db", "num_queries", "dim", "bits", "k")
    )
    projection = rng.normal(size=(dim, bits)).astype(np.float32)
    db_feats = rng.normal(size=(n, dim)).astype(np.float32)
    q_feats = rng.normal(size=(q, dim)).astype(np.float32)
    db_labels = (rng.random((n, 5)) < 0.3).astype(np.int32)
    q_labels = (rng.random((q, 5)) < 0.3).astype(np.int32)

    local = _perturb(args, db_feats[parallel.host_slice(n)])
    db_dev = parallel.shard_batch(local, mesh)  # (n, dim) global, rows split
    proj_dev = parallel.replicate(projection, mesh)
    q_dev = parallel.replicate(q_feats, mesh)

    @jax.jit
    def codes_and_distances(db, qf, w):
        db_codes = jnp.where(db @ w >= 0, 1.0, -1.0)
        q_codes = jnp.where(qf @ w >= 0, 1.0, -1.0)
        dist = retrieval.hamming_distance(q_codes, db_codes)
        # Top-k on the device over the sharded database: key = distance * n +
        # index, so ties go to the smaller index (the `hamming_topk` rule).
        keys = dist * n + jnp.arange(n, dtype=jnp.int32)[None, :]
        neg, idx = jax.lax.top_k(-keys, k)
        return db_codes, q_codes, dist, -neg // n, idx

    db_codes, q_codes, dist, dev_d, dev_i = _gather(
        codes_and_distances(db_dev, q_dev, proj_dev)
    )
    out = {
        "db_codes": db_codes.astype(np.int8),
        "dist": dist,
        "dev_topk_dist": dev_d,
        "dev_topk_idx": dev_i,
    }
    for ties in ("expected", "index"):
        for semantics in ("reference", "standard"):
            out[f"map@{k}/{semantics}/{ties}"] = np.float64(
                retrieval.mean_average_precision(
                    q_codes, db_codes, q_labels, db_labels, k,
                    semantics=semantics, ties=ties,
                )
            )  # fmt: skip
    out["ap_expected"] = retrieval.average_precision(
        dist, retrieval.relevance(q_labels, db_labels), k
    )
    # Each host searches the gathered database on its own devices.
    local_mesh = parallel.make_mesh(devices=jax.local_devices())
    out["topk_dist"], out["topk_idx"] = hamming_topk(
        q_codes, db_codes, k, mesh=local_mesh, shard="db"
    )
    # The search split over the global mesh (every host's devices). Last, so
    # that a failure (the same on every host) cannot desynchronise later
    # collectives; reported instead of raised for the test that tracks it.
    try:
        out["global_topk_dist"], out["global_topk_idx"] = hamming_topk(
            q_codes, db_codes, k, mesh=mesh, shard="db"
        )
    except RuntimeError as err:
        out["global_topk_error"] = np.asarray(str(err)[:300])
    return out


# --- workers of the harness tests -------------------------------------------


def allgather_ids(args: dict) -> dict[str, np.ndarray]:
    """Each process contributes its id; returns the gathered ids."""
    del args
    ids = multihost_utils.process_allgather(np.asarray([jax.process_index()]))
    return {"ids": np.asarray(ids).ravel()}


def topology(args: dict) -> dict[str, np.ndarray]:
    """The runtime as this process sees it, and the gathered process ids."""
    del args
    ids = multihost_utils.process_allgather(np.asarray([jax.process_index()]))
    return {
        "ids": np.asarray(ids).ravel(),
        "process": np.asarray(jax.process_index()),
        "counts": np.asarray(
            [jax.process_count(), jax.device_count(), jax.local_device_count()]
        ),
    }


def die_in_process(args: dict) -> dict[str, np.ndarray]:
    """Process `args["process"]` exits abruptly (`os._exit`, no clean-up);
    the others enter a collective that can only finish with it."""
    if jax.process_index() == args["process"]:
        os._exit(args.get("code", 3))
    multihost_utils.sync_global_devices("never completes")
    return {}
