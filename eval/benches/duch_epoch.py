"""`duch_epoch`: DUCH training throughput on UCM-sized features.

1050 training samples of random 512-d image / 768-d caption features, batch
256 (an epoch is 4 full batches and one of 26), 32 bits, hidden 4096, all
reference quirks on. Ours is the jitted global-batch step (`hashing.duch`)
fed the way `train/hashing.py` feeds it (features resident on the device,
batches gathered inside the step); the baseline is a faithful eager
PyTorch (CPU) port of the reference training loop (comrados/duch): a
per-item `Dataset` converted to tensors and collated by a `DataLoader`, four
separate forward calls, two accumulated discriminator sub-steps with a
double-backward gradient penalty, the hash step, the epoch-end B update and
learning-rate rule. Both start from our initial weights and B, see the same
batches and the same gradient-penalty interpolation weights. Agreement: the
total loss after 20 steps (4 epochs), relative difference <= 1e-4.
"""

import time

import jax
import numpy as np

from eval.benches.duch_torch import (
    BATCH,
    BITS,
    DIM_IMG,
    DIM_TXT,
    HIDDEN,
    N_TRAIN,
    torch_baseline,
)
from jaxcxai import parallel
from jaxcxai.hashing import duch, feed

AGREE_STEPS = 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    return {
        "img": f(N_TRAIN, DIM_IMG),
        "img_aug": f(N_TRAIN, DIM_IMG),
        "txt": f(N_TRAIN, DIM_TXT),
        "txt_aug": f(N_TRAIN, DIM_TXT),
        "label": rng.integers(0, 21, N_TRAIN),
    }


# --------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------


class Ours:
    def __init__(self, hyper, data, key):
        self.key = key
        devices = jax.devices()
        # Fake CPU devices share the same cores: use one device there.
        self.mesh = parallel.make_mesh(
            devices=devices[:1] if devices[0].platform == "cpu" else devices
        )
        repl = parallel.replicated_sharding(self.mesh)
        # As train/hashing.py: the features stay on the devices and each
        # step gathers its batch.
        layout = feed.BatchLayout(one_caption=True, with_txt_aug=False)
        part = dict(data, buffer_idx=np.arange(N_TRAIN))
        self.arrays = feed.resident_arrays(part, layout, self.mesh)
        self.step = jax.jit(
            feed.make_fed_step(duch.make_train_step(hyper), layout, self.mesh),
            donate_argnums=0,
            out_shardings=(repl, repl),
        )
        self.end = jax.jit(
            lambda s, e: duch.epoch_end(s, e, hyper), donate_argnums=0,
            out_shardings=repl,
        )  # fmt: skip

    def init(self, state):
        return parallel.replicate(state, self.mesh)

    def epoch(self, state, epoch, batches):
        losses = []
        for pos in batches:
            rows = parallel.replicate(pos.astype(np.int32), self.mesh)
            state, m = self.step(state, self.arrays, rows, None, self.key)
            losses.append(m["loss"])
        state = self.end(state, epoch)
        jax.block_until_ready(state)
        return state, [float(x) for x in losses]


def _uniform_stream(key, steps_per_epoch_sizes, start_step=0):
    """The GP weights of each step, exactly as our step draws them."""
    step = start_step
    while True:
        for n in steps_per_epoch_sizes:
            yield np.array(duch.gp_uniforms(key, step, n, BITS))
            step += 1


def run(quick: bool) -> dict:
    import torch

    torch.manual_seed(0)
    # On a GPU both sides run there, in full float32 (no TF32), so the
    # 20-step losses stay comparable; on the CPU the baseline is CPU torch.
    on_gpu = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    dev = "cuda" if on_gpu else "cpu"
    if on_gpu:
        jax.config.update("jax_default_matmul_precision", "highest")
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    hyper = duch.DuchHyper(bits=BITS, hidden=HIDDEN)
    data = _data()
    key = jax.random.key(1)
    state0 = duch.init_state(jax.random.key(0), hyper, DIM_IMG, DIM_TXT, N_TRAIN)
    state0 = jax.device_get(state0)  # host copy: our step donates its input
    batches = [duch.epoch_batches(N_TRAIN, BATCH, 0, e) for e in range(8)]
    sizes = [len(b) for b in batches[0]]
    spe = len(sizes)
    agree_epochs = AGREE_STEPS // spe

    # Agreement: 20 steps from the same start.
    ours = Ours(hyper, data, key)
    state = ours.init(state0)
    ours_losses = []
    for e in range(agree_epochs):
        state, losses = ours.epoch(state, e, batches[e])
        ours_losses += losses
    base_epoch = torch_baseline(torch, state0, data, _uniform_stream(key, sizes), dev)
    base_losses = []
    for e in range(agree_epochs):
        base_losses += base_epoch(e, [list(b) for b in batches[e]])
    rel = abs(ours_losses[-1] - base_losses[-1]) / abs(base_losses[-1])

    # Timing: best of `repeats` epochs (after the jit warm-up above).
    repeats = 2 if quick else 5
    best_ours = best_base = float("inf")
    for r in range(repeats):
        e = agree_epochs + r
        t0 = time.perf_counter()
        state, _ = ours.epoch(state, e, batches[e % len(batches)])
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        base_epoch(e, [list(b) for b in batches[e % len(batches)]])
        sync()
        best_base = min(best_base, time.perf_counter() - t0)
    return {
        "ours_s": best_ours,
        "baseline": f"eager PyTorch ({dev}) port of the DUCH reference training loop",
        "baseline_s": best_base,
        "agreement": {
            "loss_after_20_steps_ours": ours_losses[-1],
            "loss_after_20_steps_torch": base_losses[-1],
            "rel_diff": rel,
            "max_rel_diff_all_steps": float(
                max(abs(a - b) / abs(b) for a, b in zip(ours_losses, base_losses))
            ),
        },
        "agreement_ok": bool(rel <= 1e-4),
        "params": {
            "unit": "seconds per epoch",
            "n_train": N_TRAIN,
            "dims": [DIM_IMG, DIM_TXT],
            "batch": BATCH,
            "bits": BITS,
            "hidden": HIDDEN,
            "steps_per_epoch": spe,
            "ours_steps_per_s": spe / best_ours,
            "baseline_steps_per_s": spe / best_base,
            "torch_threads": torch.get_num_threads(),
            "repeats": repeats,
        },
    }
