"""`integrated_gradients`: 64 SynthAerial images of 64x64, 50 steps, vs Captum.

Model: the SynthAerial small CNN (`jaxcxai.models.cnn.SmallCNN`, widths
32/64/128, 13 scene classes) with random weights from a fixed seed and
random BatchNorm statistics (no trained weights ship with the repository);
the baseline runs a PyTorch port of the same weights
(`small_cnn_torch.py`). Images: the first 64 SynthAerial images (seed 0),
scaled to [-1, 1]. Target: the predicted class; zero baseline; the
`riemann_middle` rule with 50 steps on both sides. (Not the trapezoid:
Captum's `riemann_trapezoid` weights are 1/n with halved ends, summing to
(n - 1)/n, so its attributions are (n - 1)/n of the trapezoid rule's, ours.)

Ours: `attribution.integrated_gradients(chunk_size=5)`: chunks of 5 steps x
64 images, one jitted chunk program looped on the host. Baseline: Captum's
`IntegratedGradients.attribute` with its default `internal_batch_size=None`
(all 50 x 64 scaled images in one batch), torch's default threads.

Agreement: in float32 the two differ where a ReLU pre-activation on the
path lies within rounding of 0 (the two libraries sum convolutions in
different orders, so a unit can switch on one side only); the criterion is
therefore checked in float64 (both sides, 8 images, same rule and steps):
max |ours - captum| / max |captum| <= 1e-4. The float32 numbers are reported.

Memory at 256 steps (full mode): the peak resident set of a fresh
subprocess that runs one explanation of the 64 images (VmHWM of
/proc/self/status), minus its peak just before (after imports, model and
data); ours includes compilation. Ours with chunk 16; Captum with `internal_batch_size` = 16 x 64
(the same chunk); Captum's default (one batch of 256 x 64 images) is not run
at 256 steps: it is measured at 50 steps, and it grows linearly in steps.
"""

import json
import subprocess
import sys
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

STEPS, METHOD, CHUNK = 50, "riemann_middle", 5


def _ours(model, variables, x, t, steps, chunk):
    from jaxcxai import attribution as attr

    f = lambda v: model.apply(variables, v)
    return lambda: jax.block_until_ready(
        attr.integrated_gradients(f, x, t, steps=steps, method=METHOD, chunk_size=chunk)
    )


def _captum(torch, variables, x, t, steps, internal=None, double=False):
    from captum.attr import IntegratedGradients

    net = torch_small_cnn(torch, variables)
    xt = to_nchw(torch, x)
    if double:
        net, xt = net.double(), xt.double()
    ig = IntegratedGradients(net)
    tt = torch.from_numpy(np.asarray(t, np.int64))
    return lambda: to_nhwc(ig.attribute(xt, target=tt, n_steps=steps, method=METHOD,
                                        internal_batch_size=internal))  # fmt: skip


def _float64_agreement(torch, model, variables, x, t):
    from jaxcxai import attribution as attr

    jax.config.update("jax_enable_x64", True)
    try:
        v64 = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
        f = lambda v: model.apply(v64, v)
        ours = np.asarray(attr.integrated_gradients(
            f, x.astype(np.float64), t, steps=STEPS, method=METHOD, chunk_size=25))  # fmt: skip
    finally:
        jax.config.update("jax_enable_x64", False)
    theirs = _captum(torch, variables, x.astype(np.float64), t, STEPS, double=True)()
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _memory(which: str, steps: int) -> float:
    """Peak RSS increment (MiB) of one explanation in a fresh subprocess."""
    cmd = [sys.executable, "-m", "eval.benches.integrated_gradients", which, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def run(quick: bool) -> dict:
    import torch

    n = 16 if quick else 64
    model, variables = bench_model()
    x = bench_images(n)
    from jaxcxai.attribution import resolve_target

    t = np.asarray(resolve_target(lambda v: model.apply(variables, v), x, None))
    repeats = 1 if quick else 2
    ours_fn = _ours(model, variables, x, t, STEPS, CHUNK)
    t0 = time.perf_counter()
    ours_fn()
    first = time.perf_counter() - t0
    ours_s, ours = best_time(ours_fn, repeats)
    captum_fn = _captum(torch, variables, x, t, STEPS)
    captum_s, theirs = best_time(captum_fn, repeats)
    ours = np.asarray(ours)
    rel64 = _float64_agreement(torch, model, variables, x[:8], t[:8])
    agreement = {"float64_max_rel": rel64, **float32_agreement(ours, theirs)}
    extra = {"ours_first_call_s": first, "torch_threads": torch.get_num_threads()}
    if not quick:
        extra["memory_peak_rss_increment_mib"] = {
            "ours_256_steps_chunk16": _memory("ours", 256),
            "captum_256_steps_internal_batch_1024": _memory("captum_chunked", 256),
            "captum_default_50_steps": _memory("captum", 50),
            "ours_50_steps_chunk5": _memory("ours5", 50),
        }
        extra["memory_method"] = (
            "fresh subprocess; VmHWM after one explanation (ours: including "
            "compilation) minus VmHWM after imports, model and data"
        )
    return {
        "ours_s": ours_s,
        "baseline": f"captum {__import__('captum').__version__} IntegratedGradients "
        f"(torch {torch.__version__}, CPU, internal_batch_size=None)",
        "baseline_s": captum_s,
        "agreement": agreement,
        "agreement_ok": bool(rel64 <= 1e-4),
        "params": {
            "images": n,
            "size": 64,
            "steps": STEPS,
            "method": METHOD,
            "chunk_size": CHUNK,
            "baseline": "zero",
            "target": "predicted class",
            "weights": "random (fixed seed); no trained SynthAerial weights ship",
            "float64_check_images": 8,
        },
        "extra": extra,
    }


def _peak_rss_mib() -> float:
    """VmHWM of this process (reset at exec, unlike ru_maxrss, which a child
    inherits from the parent it was forked from)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def _memory_worker(which: str, steps: int) -> None:
    import torch

    model, variables = bench_model()
    x = bench_images()
    from jaxcxai.attribution import resolve_target

    t = np.asarray(resolve_target(lambda v: model.apply(variables, v), x, None))
    if which.startswith("ours"):
        fn = _ours(model, variables, x, t, steps, 5 if which == "ours5" else 16)
    else:
        internal = 16 * len(x) if which == "captum_chunked" else None
        fn = _captum(torch, variables, x, t, steps, internal)
    before = _peak_rss_mib()
    fn()
    print(json.dumps({"peak_mib": _peak_rss_mib() - before, "before_mib": before}))


if __name__ == "__main__":
    _memory_worker(sys.argv[1], int(sys.argv[2]))
