"""`smoothgrad`: SmoothGrad with 50 noisy copies of 64 images, vs Captum.

Model, images and targets as in `integrated_gradients` (the SynthAerial
small CNN with random weights from a fixed seed, its PyTorch port, 64
SynthAerial images of 64x64 in [-1, 1], the predicted class).

Noise shared by both sides: Captum's `NoiseTunnel` draws its noise with one
`torch.normal(0, stdev)` call over the (N * 50, C, H, W) batch of copies
(copy j of image i at row 50 i + j). We seed torch, make that same call,
divide by the std and hand the draws to ours as the explicit (N, 50, H, W, C)
standard normal `noise`; then we re-seed torch and run Captum, which draws
the identical noise.

Ours: `attribution.smoothgrad(base="gradient", noise_scale="absolute",
sigma=0.2, chunk_size=5)`: chunks of 5 copies x 64 images, one jitted chunk
program looped on the host. Baseline: `NoiseTunnel(Saliency(net))
.attribute(nt_type="smoothgrad", nt_samples=50, stdevs=0.2, abs=False)`,
its default `nt_samples_batch_size=None` (all 50 x 64 copies in one batch).

Agreement: as for `integrated_gradients`, float32 gradients differ where a
ReLU pre-activation of a noisy copy lies within rounding of 0, so the
1e-4 criterion is checked in float64 (both sides, 8 images, the same
noise); the float32 numbers are reported.
"""

import time

import jax
import numpy as np

from eval.benches.small_cnn_torch import (
    bench_images,
    bench_model,
    float32_agreement,
    to_nchw,
    to_nhwc,
    torch_small_cnn,
)
from eval.benches.timing import best_time

COPIES, SIGMA, CHUNK, SEED = 50, 0.2, 5, 1234


def _shared_noise(torch, shape, dtype):
    """The draws NoiseTunnel makes after `torch.manual_seed(SEED)`, as
    (N, copies, H, W, C) standard normals of `dtype` (NoiseTunnel draws in
    float32 whatever the input's dtype)."""
    n, h, w, c = shape
    torch.manual_seed(SEED)
    size = (n * COPIES, c, h, w)
    std = torch.tensor(SIGMA).repeat(size)
    draws = torch.normal(0, std).numpy().astype(dtype) / dtype(SIGMA)
    return np.transpose(draws.reshape(n, COPIES, c, h, w), (0, 1, 3, 4, 2))


def _captum(torch, variables, x, t, double=False):
    from captum.attr import NoiseTunnel, Saliency

    net = torch_small_cnn(torch, variables)
    xt = to_nchw(torch, x)
    if double:
        net, xt = net.double(), xt.double()
    nt = NoiseTunnel(Saliency(net))
    tt = torch.from_numpy(np.asarray(t, np.int64))

    def call():
        torch.manual_seed(SEED)
        return to_nhwc(nt.attribute(xt, nt_type="smoothgrad", nt_samples=COPIES,
                                    stdevs=SIGMA, target=tt, abs=False))  # fmt: skip

    return call


def _ours(f, x, t, noise):
    from jaxcxai import attribution as attr

    return lambda: jax.block_until_ready(
        attr.smoothgrad(
            f, x, t, noise=noise, sigma=SIGMA, noise_scale="absolute", chunk_size=CHUNK
        )  # fmt: skip
    )


def _float64_agreement(torch, model, variables, x, t):
    noise = _shared_noise(torch, x.shape, np.float64)
    jax.config.update("jax_enable_x64", True)
    try:
        v64 = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
        f = lambda v: model.apply(v64, v)
        ours = np.asarray(_ours(f, x.astype(np.float64), t, noise)())
    finally:
        jax.config.update("jax_enable_x64", False)
    theirs = _captum(torch, variables, x.astype(np.float64), t, double=True)()
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def run(quick: bool) -> dict:
    import torch

    from jaxcxai.attribution import resolve_target

    n = 16 if quick else 64
    model, variables = bench_model()
    x = bench_images(n)
    f = lambda v: model.apply(variables, v)
    t = np.asarray(resolve_target(f, x, None))
    noise = jax.device_put(_shared_noise(torch, x.shape, np.float32))
    repeats = 1 if quick else 2
    ours_fn = _ours(f, x, t, noise)
    t0 = time.perf_counter()
    ours_fn()
    first = time.perf_counter() - t0
    ours_s, ours = best_time(ours_fn, repeats)
    captum_s, theirs = best_time(_captum(torch, variables, x, t), repeats)
    ours = np.asarray(ours)
    rel64 = _float64_agreement(torch, model, variables, x[:8], t[:8])
    agreement = {"float64_max_rel": rel64, **float32_agreement(ours, theirs)}
    return {
        "ours_s": ours_s,
        "baseline": f"captum {__import__('captum').__version__} NoiseTunnel(Saliency)"
        f" smoothgrad (torch {torch.__version__}, CPU, nt_samples_batch_size=None)",
        "baseline_s": captum_s,
        "agreement": agreement,
        "agreement_ok": bool(rel64 <= 1e-4),
        "params": {
            "images": n,
            "size": 64,
            "copies": COPIES,
            "sigma": SIGMA,
            "noise": "shared: Captum's torch.normal draws passed to ours",
            "chunk_size": CHUNK,
            "base": "raw gradient (Saliency abs=False)",
            "target": "predicted class",
            "weights": "random (fixed seed); no trained SynthAerial weights ship",
            "float64_check_images": 8,
        },
        "extra": {"ours_first_call_s": first, "torch_threads": torch.get_num_threads()},
    }
