"""Worker functions of `test_fits`: bulk probes, LoCE, DUCH and CHNR, any layout.

Each worker runs unchanged in 1 process x 8 devices and 2 processes x 4
devices (`harness.run_jobs`) and returns globally gathered NumPy values.
The APIs exercised here take *global* arrays plus a mesh (every host passes
the same full arrays and the API lays them out over all hosts' devices):
`bulk.fit_net2vec`, `cavs.fit_cavs`, `tcav.run_tcav`, `loce.fit_sharded`,
`loce.store.fit_to_store`, and `duch.place_batch` (which, like
`train/hashing.py`, is given the global batch). The inputs are derived from
the seed on every host, so hosts agree on them without communicating.
Workers take a JSON-able dict and return a flat dict of NumPy arrays.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from jaxcxai import parallel
from jaxcxai.concepts import loce
from jaxcxai.concepts.probes import bulk, tcav
from jaxcxai.concepts.probes.state import Net2VecConfig


def _gather(tree):
    """Global values of a pytree's `jax.Array`s (possibly cross-host), as
    NumPy on every host; host values (NumPy, the same on every host) as
    they are."""

    def one(x):
        if isinstance(x, jax.Array):
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def _perturb(args: dict, x: np.ndarray) -> np.ndarray:
    """Adds `args["perturb"]` on process `args["perturb_process"]` only.

    Lets a test check that the equality tests can fail: one host's copy of
    the global input differs from what the single-process run sees.
    """
    if args.get("perturb") and jax.process_index() == args.get("perturb_process", 1):
        return x + np.asarray(args["perturb"], x.dtype)
    return x


def net2vec_fit(args: dict) -> dict[str, np.ndarray]:
    """A bulk Net2Vec fit (K concepts x R runs) with examples on the mesh.

    Activations (N, 8, 8, C) are Gaussian; concept k's mask is planted as
    `acts . u_k > 0` per pixel, so a probe can learn it. The fit shards each
    minibatch over all hosts' devices (`mesh=`).

    Args:
      args: `seed`, `n`, `channels`, `concepts`, `runs`, `epochs`,
        `batch_size`; optional `perturb`, `perturb_process`.

    Returns:
      `w` (K, R, C), `b` (K, R), `loss` (T,) of the fit; `acc` (K, R) pixel
      accuracy of the learned probes on the planted masks (NumPy).
    """
    rng = np.random.default_rng(args["seed"])
    n, c, k = args["n"], args["channels"], args["concepts"]
    acts = rng.normal(size=(n, 8, 8, c)).astype(np.float32)
    dirs = rng.normal(size=(k, c)).astype(np.float32)
    masks = (np.einsum("nhwc,kc->nkhw", acts, dirs) > 0).astype(np.uint8)
    acts = _perturb(args, acts)
    config = Net2VecConfig(
        optimizer="adamw",
        learning_rate=0.05,
        batch_size=args["batch_size"],
        epochs=args["epochs"],
    )
    key = jax.random.key(args["seed"])
    probe, loss = bulk.fit_net2vec(
        acts,
        masks,
        key,
        config=config,
        num_runs=args["runs"],
        mesh=parallel.make_mesh(),
    )
    out = _gather({"w": probe.w, "b": probe.b, "loss": loss})
    z = np.einsum("nhwc,krc->nkrhw", acts, out["w"]) + out["b"][None, :, :, None, None]
    out["acc"] = ((z > 0) == masks[:, :, None].astype(bool)).mean(axis=(0, 3, 4))
    return {name: np.asarray(v) for name, v in out.items()}


def cav_fits(args: dict) -> dict[str, np.ndarray]:
    """A TCAV run (bulk CAV fits) with the random runs split over the mesh.

    Concept sets are Gaussian clouds shifted along a per-concept direction;
    the random sets are unshifted. `run_tcav` uses a small tanh head on the
    (N, d) class activations. R random sets (not a multiple of 8) are
    padded to the shard count inside `fit_cavs`.

    Args:
      args: `seed`, `concepts`, `randoms`, `n`, `dim`, `num_class`; optional
        `perturb`, `perturb_process`.

    Returns:
      `cavs/direction`, `cavs/weight` (K, R, d), `cavs/bias` (K, R);
      `cavs/acc` (K, R) training accuracy of each classifier (NumPy);
      `tcav/scores` (K, R), `tcav/random_scores` (R - 1,) and the other
      `stats.tcav_significance` entries of `run_tcav`.
    """
    rng = np.random.default_rng(args["seed"])
    k, r, n, d = args["concepts"], args["randoms"], args["n"], args["dim"]
    shift = 1.5 * rng.normal(size=(k, 1, d))
    concept = (rng.normal(size=(k, n, d)) + shift).astype(np.float32)
    random = rng.normal(size=(r, n, d)).astype(np.float32)
    concept = _perturb(args, concept)
    w1 = rng.normal(size=(d, 8)).astype(np.float32)
    w2 = rng.normal(size=(8, args["num_class"])).astype(np.float32)
    class_acts = rng.normal(size=(16, d)).astype(np.float32)
    res = tcav.run_tcav(
        lambda a: jnp.tanh(a @ w1) @ w2,  # nonlinear: gradients vary per example
        class_acts, 0, concept, random, mesh=parallel.make_mesh(),
    )  # fmt: skip
    out = {f"cavs/{name}": value for name, value in res.pop("cavs")._asdict().items()}
    out = _gather(out | {f"tcav/{name}": value for name, value in res.items()})
    w, b = out["cavs/weight"], out["cavs/bias"][..., None]
    pos = np.einsum("krd,kid->kri", w, concept) + b > 0
    neg = np.einsum("krd,rjd->krj", w, random) + b <= 0
    out["cavs/acc"] = np.concatenate([pos, neg], axis=-1).mean(-1)
    return out


def _loce_inputs(args: dict):
    """(acts (N, C, 8, 8), targets (N, T, T)) with a planted concept each."""
    rng = np.random.default_rng(args["seed"])
    n, c, t = args["n"], args["channels"], args["grid"]
    acts = rng.normal(size=(n, c, 8, 8)).astype(np.float32)
    dirs = rng.normal(size=(n, c)).astype(np.float32)
    logits = np.einsum("nchw,nc->nhw", acts, dirs)
    # Nearest-neighbour upsampling to the T x T grid: a soft target in [0, 1].
    rep = t // 8
    soft = 1.0 / (1.0 + np.exp(-logits))
    targets = np.repeat(np.repeat(soft, rep, 1), rep, 2).astype(np.float32)
    return _perturb(args, acts), targets


def loce_fit(args: dict) -> dict[str, np.ndarray]:
    """Per-sample LoCE fits split over the mesh, directly and into a store.

    N (not a multiple of 8) samples, random normal init (one key per
    sample). `fit_sharded` pads to the shard count and shards the samples
    over all hosts' devices; `fit_to_store` fits them again the same way (as
    one chunk), computes the IoUs and consolidates the store in one
    directory shared by the hosts (process 0 writes it; every host reads
    the consolidated results back).

    Args:
      args: `seed`, `n`, `channels`, `grid`, `steps`, `store_dir`; optional
        `perturb`, `perturb_process`.

    Returns:
      `loce` (N, C) of `fit_sharded`; `store/loce` (N, C), `store/iou` (N,)
      of the store.
    """
    acts, targets = _loce_inputs(args)
    config = loce.LoceConfig(steps=args["steps"], init="normal")
    key = jax.random.key(args["seed"])
    mesh = parallel.make_mesh()
    fitted = loce.fit_sharded(acts, targets, config=config, mesh=mesh, key=key)
    out = {"loce": _gather(fitted)}
    # One chunk of all N: the same shapes as above, so the fit's compiled
    # program is reused (the key differs: chunk 0 uses fold_in(key, 0)).
    chunks = [(acts, targets)]
    directory = args["store_dir"]
    results = loce.store.fit_to_store(
        chunks, directory, config=config, mesh=mesh, key=key
    )
    out["store/loce"] = results.layers["layer"]["loce"]
    out["store/iou"] = results.layers["layer"]["iou"]
    # Only the consolidated store is left: no part or temporary files.
    out["store/files"] = np.asarray(sorted(os.listdir(directory)))
    return out


def duch_epoch(args: dict) -> dict[str, np.ndarray]:
    """One DUCH epoch (train steps plus `epoch_end`) over the global batch.

    Every host passes the global batch to `duch.place_batch` (as
    `train/hashing.py` does), which shards it over all hosts' devices; the
    step is jitted with replicated state and outputs, as in
    `train/hashing.py`, so BatchNorm moments, the contrastive terms and the
    gradients all reduce across hosts.

    Args:
      args: `seed`, `num_train`, `batch_size` (a multiple of 8), `bits`,
        `hidden`, `image_dim`, `text_dim`; optional `perturb`,
        `perturb_process`.

    Returns:
      `params/...`, `batch_stats/...` (BatchNorm running statistics, the
      code buffers and the target codes B set by `epoch_end`) and `loss`
      (steps,) per step.
    """
    from jaxcxai.hashing import duch, feed  # scikit-learn: import only here

    rng = np.random.default_rng(args["seed"])
    m, image_dim, text_dim = args["num_train"], args["image_dim"], args["text_dim"]
    part = {
        "buffer_idx": np.arange(m, dtype=np.int32),
        "img": rng.normal(size=(m, image_dim)).astype(np.float32),
        "img_aug": rng.normal(size=(m, image_dim)).astype(np.float32),
        "txt": rng.normal(size=(m, text_dim)).astype(np.float32),
    }
    part["img"] = _perturb(args, part["img"])
    hyper = duch.DuchHyper(bits=args["bits"], hidden=args["hidden"], lr=1e-3)
    key = jax.random.key(args["seed"])
    mesh = parallel.make_mesh()
    repl = parallel.replicated_sharding(mesh)
    state = duch.init_state(key, hyper, image_dim, text_dim, m)
    state = parallel.replicate(state, mesh)
    step = jax.jit(duch.make_train_step(hyper), out_shardings=(repl, repl))
    end = jax.jit(duch.epoch_end, static_argnums=2, out_shardings=repl)
    losses = []
    for pos in duch.epoch_batches(m, args["batch_size"], args["seed"], 0):
        batch = feed.take_batch(part, pos, None, feed.BatchLayout())
        state, metrics = step(state, duch.place_batch(batch, mesh), key)
        losses.append(metrics["loss"])
    state = end(state, 0, hyper)
    tree = {"params": state.params, "batch_stats": state.batch_stats}
    return _flatten(_gather({**tree, "loss": jnp.stack(losses)}))


def chnr_epochs(args: dict) -> dict[str, np.ndarray]:
    """One CHNR meta-phase epoch, then one main-phase epoch, as train/hashing.py.

    The training set is built like the hashing tests build theirs: Gaussian
    image features and captions (K per image) with class labels, split and
    standardised by `data.prepare_data`, then `data.chnr_sets` (noisy main
    set, clean meta set) and `schedule.phases("chnr", ...)` with
    `clean_epochs=1, epochs=2`. Each epoch runs as train/hashing.py's
    non-resident (multi-device) path does: per-epoch caption draws, host
    batches from `feed.take_batch` placed with `duch.place_batch` (every host
    passes the global batch), the phase's step jitted with replicated
    outputs and donated state, and the phase's `end` after the epoch. The
    meta batches carry labels (fake pairs with another label). The steps
    compile at XLA's backend optimisation level 0, the `compiler_options`
    the hashing smoke tests pass to `train_and_evaluate` (half the time).

    Args:
      args: `seed`, `n` (all rows; half are training rows), `classes`,
        `captions`, `batch_size` (a multiple of 8 dividing both phases'
        sizes), `bits`, `hidden`, `image_dim`, `text_dim`, `noise_prob`,
        `clean_fraction`; optional `perturb`, `perturb_process` (added to
        the standardised training images).

    Returns:
      `params/...` (f, g and D_N), `batch_stats/...` (BatchNorm running
      statistics, code buffers, target codes B, `meta/threshold` and the
      reset meta sums), `loss` (meta then main steps), `det_loss` (meta
      steps) and `noisy` (training rows given another row's caption).
    """
    from jaxcxai import training
    from jaxcxai.hashing import chnr, duch, feed, schedule
    from jaxcxai.hashing import data as hashing_data

    rng = np.random.default_rng(args["seed"])
    n, k = args["n"], args["captions"]
    codes = np.arange(n) % args["classes"]
    features = {
        "image_features": rng.normal(3.0, 2.0, size=(n, args["image_dim"])),
        "image_features_aug": rng.normal(3.0, 2.0, size=(n, args["image_dim"])),
        "text_features": rng.normal(-1.0, 0.5, size=(n, k, args["text_dim"])),
        "text_features_aug": rng.normal(-1.0, 0.5, size=(n, k, args["text_dim"])),
        "labels": np.eye(args["classes"])[codes],
    }
    train = hashing_data.prepare_data(**features, seed=args["seed"])["train"]
    train["img"] = _perturb(args, train["img"])
    sets = hashing_data.chnr_sets(
        train,
        noise_prob=args["noise_prob"],
        clean_fraction=args["clean_fraction"],
        seed=args["seed"],
    )
    hyper = chnr.ChnrHyper(
        bits=args["bits"],
        hidden=args["hidden"],
        lr=1e-3,
        detector_hidden=args["hidden"],
        txt2_is_txt1=False,
    )
    phases = schedule.phases("chnr", hyper, train, 2, sets, clean_epochs=1)
    init = schedule.init_fn(
        chnr, hyper, args["image_dim"], args["text_dim"], len(train["img"])
    )
    mesh = parallel.make_mesh()
    repl = parallel.replicated_sharding(mesh)
    key_init, key_train = jax.random.split(jax.random.key(args["seed"]))
    state = training.init_state_sharded(init, key_init, repl)
    bs = args["batch_size"]
    losses, det_losses = [], []
    for ph in phases:
        part = ph["data"]
        # train/hashing.py's `batch_layout` with the captions and txt_aug
        # quirks fixed (a fresh caption per epoch, the augmented caption fed).
        layout = feed.BatchLayout(
            one_caption=False, with_txt_aug=True, with_labels=ph["name"] == "meta"
        )
        step_fn = jax.jit(
            ph["step"],
            donate_argnums=0,
            out_shardings=(repl, repl),
            compiler_options={"xla_backend_optimization_level": 0},
        )
        end_fn = jax.jit(ph["end"], donate_argnums=0, out_shardings=repl)
        for epoch in range(ph["start"], ph["stop"]):
            offsets = schedule.caption_offsets(part, epoch, args["seed"], False)
            for pos in duch.epoch_batches(len(part["img"]), bs, args["seed"], epoch):
                assert len(pos) % mesh.size == 0  # sharded, not replicated
                b = feed.take_batch(part, pos, offsets[pos], layout)
                state, m = step_fn(state, duch.place_batch(b, mesh), key_train)
                losses.append(m["loss"])
                if "det_loss" in m:
                    det_losses.append(m["det_loss"])
            state = end_fn(state, epoch)
    tree = {"params": state.params, "batch_stats": state.batch_stats}
    out = {**tree, "loss": jnp.stack(losses), "det_loss": jnp.stack(det_losses)}
    return _flatten(_gather(out)) | {"noisy": sets[0]["noisy"]}


def _flatten(tree) -> dict[str, np.ndarray]:
    """`{path/to/leaf: array}` of a pytree of host arrays."""
    return {
        jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }
