"""Benchmark harness: ours vs a baseline, same process, same inputs.

    python -m eval.bench NAME [--quick] [--out FILE]
    python -m eval.bench --list

Each benchmark module `eval/benches/NAME.py` has `run(quick: bool) -> dict`
with keys `ours_s`, `baseline`, `baseline_s`, `agreement`, `agreement_ok`,
`params` (and optionally `extra`). The harness adds the name, the device and
software versions, and `speedup = baseline_s / ours_s`, and writes one JSON
record (default `bench_results/NAME.json`, written atomically).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys

from configs import cli
from jaxcxai import hostmem
from jaxcxai.atomic_files import write_text_atomic

# Benchmarks that shard over a mesh get 8 fake CPU devices (the flag only
# affects the host platform: a GPU/TPU run uses its real devices). The
# others run on one CPU device: fake devices share the same cores, and
# XLA:CPU steps measured up to 12% slower with the flag set.
# stability_bulk: its sequential SGD loops run one per device, so one per
# core of the 2-core machine.
FAKE_CPU_DEVICES = {"sharded_step": 8, "loce": 8, "stability_bulk": 2}
_DEVICE_FLAG = "--xla_force_host_platform_device_count"

# name -> (module, what it measures). Modules are imported only when run, so
# the baselines' heavy dependencies (torch, faiss) load only when needed.
BENCHMARKS = {
    "sharded_step": (
        "eval.benches.sharded_step",
        "data-parallel train step throughput on 1, 2, 4, 8 devices",
    ),
    "backbone_throughput": (
        "eval.benches.backbone_throughput",
        "forward images/s at 224 px, MobileNetV2 and ResNet-18 at batch 64 and "
        "256, float32 (bfloat16 too) vs eager PyTorch with the same weights",
    ),
    "map_eval": (
        "eval.benches.map_eval",
        "cross-modal mAP@K / P@K / PR evaluation vs the reference per-query loops",
    ),
    "hamming_topk": (
        "eval.benches.hamming_topk",
        "exact top-k Hamming search, 1M x 64-bit codes vs faiss IndexBinaryFlat",
    ),
    "duch_epoch": (
        "eval.benches.duch_epoch",
        "DUCH training steps on UCM-sized features vs an eager PyTorch port",
    ),
    "tcav_bulk": (
        "eval.benches.tcav_bulk",
        "20 concepts x 50 random runs of CAVs at d=25088 vs sklearn SGDClassifier",
    ),
    "net2vec_bulk": (
        "eval.benches.net2vec_bulk",
        "20 concepts x 3 layers of Net2Vec probes vs a one-at-a-time PyTorch loop",
    ),
    "loce": (
        "eval.benches.loce",
        "LoCE per-sample fits, 256 x C=256 x 16x16 -> T=100 (vs eager-PyTorch reference)",
    ),
    "kernel_shap": (
        "eval.benches.kernel_shap",
        "200 KernelSHAP explanations of a 12-feature MLP vs shap.KernelExplainer",
    ),
    "lime_tabular": (
        "eval.benches.lime_tabular",
        "200 tabular LIME explanations, 5000 samples each, vs the lime package",
    ),
    "integrated_gradients": (
        "eval.benches.integrated_gradients",
        "Integrated Gradients, 64 images 64x64, 50 steps, vs Captum",
    ),
    "smoothgrad": (
        "eval.benches.smoothgrad",
        "SmoothGrad, 50 noisy copies, vs Captum NoiseTunnel",
    ),
    "mc_dropout_uq": (
        "eval.benches.mc_dropout_uq",
        "MC-dropout U_epi of the gating MLP, 10k rows x 50 passes, vs eager PyTorch",
    ),
    "gating_sweep": (
        "eval.benches.gating_sweep",
        "gating E2 cell (RF+TreeSHAP, MLP+KernelSHAP, 7 levels) vs the reference loop",
    ),
    "nmf_bulk": (
        "eval.benches.nmf_bulk",
        "3 layers x 8 seeds of NMF (k=10, 4096 x {384,512,512}) vs sklearn NMF(mu)",
    ),
    "bg_views": (
        "eval.benches.bg_views",
        "512 background-randomised views 128x128 (full + Voronoi) from SynthAerial "
        "backgrounds vs a NumPy/PIL/scipy loop",
    ),
    "multiview_loce": (
        "eval.benches.multiview_loce",
        "multi-view LoCEs, 64 objects x 32 views, C=256, 16x16 -> 80x80 "
        "(vs eager-PyTorch reference)",
    ),
    "triplet_agreement": (
        "eval.benches.triplet_agreement",
        "triplet agreement, 1000 ImageNet classes vs WordNet (LCA counting) vs "
        "NumPy triplet enumeration, per triplet; UAES samples/s",
    ),
    "pgd_attack": (
        "eval.benches.pgd_attack",
        "targeted PGD, 128 images x 10 targets, eps 8/255, 20 steps, SynthAerial "
        "small CNN vs torchattacks PGD on a PyTorch port",
    ),
    "stability_bulk": (
        "eval.benches.stability_bulk",
        "retrieval stability, 10 concepts x 4 layers x 1d/2d/3d x 20 runs of CAVs "
        "vs sklearn SGDClassifier",
    ),
    "compare_layers": (
        "eval.benches.compare_layers",
        "layer x layer concept IoU / Pearson, 2 nets x 8 layers x 10 concepts, "
        "500 images, vs a NumPy loop",
    ),
}


def device_info() -> dict:
    import jax

    devices = jax.devices()
    info = {
        "platform": devices[0].platform,
        "kind": devices[0].device_kind,
        "count": len(devices),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
    }
    if devices[0].platform == "cpu":
        info["note"] = "CPU devices may be fake (xla_force_host_platform_device_count)"
    return info


def run_benchmark(name: str, quick: bool) -> dict:
    """Runs one benchmark and returns its complete record."""
    if name not in BENCHMARKS:
        raise SystemExit(
            f"Unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}"
        )
    module = importlib.import_module(BENCHMARKS[name][0])
    result = module.run(quick)
    missing = {"ours_s", "baseline", "baseline_s", "agreement", "agreement_ok"} - set(
        result
    )
    if missing:
        raise RuntimeError(f"benchmark {name} returned no {sorted(missing)}")
    ours, base = result["ours_s"], result["baseline_s"]
    record = {
        "name": name,
        "device": device_info(),
        "quick": quick,
        "ours_s": ours,
        "baseline": result["baseline"],
        "baseline_s": base,
        "speedup": (base / ours) if ours and base else None,
        "agreement": result["agreement"],
        "agreement_ok": bool(result["agreement_ok"]),
        "params": result.get("params", {}),
    }
    if "extra" in result:
        record["extra"] = result["extra"]
    return record


def set_cpu_devices(name: str) -> None:
    """Sets the fake CPU device count for benchmark `name` (before jax
    initialises its backends), replacing any count already in XLA_FLAGS."""
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith(_DEVICE_FLAG)
    ]
    if name in FAKE_CPU_DEVICES:
        flags.append(f"{_DEVICE_FLAG}={FAKE_CPU_DEVICES[name]}")
    os.environ["XLA_FLAGS"] = " ".join(flags)


def main(argv=None) -> int:
    """`python -m eval.bench`; a user mistake is one `error:` line (exit 2)."""
    return cli.guard(_main, argv)


def _main(argv) -> int:
    parser = cli.ArgumentParser(
        prog="python -m eval.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument("--quick", action="store_true", help="under 3 min on 2 cores")
    parser.add_argument("--out", help="JSON output path")
    parser.add_argument("--list", action="store_true", help="list benchmarks")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, (_, what) in sorted(BENCHMARKS.items()):
            print(f"{name:22s} {what}")
        return 0
    if args.name not in BENCHMARKS:
        valid = ", ".join(sorted(BENCHMARKS))
        raise cli.ConfigError(f"unknown benchmark {args.name!r}; valid: {valid}")
    if args.out and os.path.isdir(args.out):
        raise cli.ConfigError(f"--out {args.out} is a directory; give a JSON file path")
    set_cpu_devices(args.name)
    # Ours and the baseline run in this process, so both get this allocator.
    hostmem.keep_freed_memory()
    record = run_benchmark(args.name, args.quick)
    out = args.out or os.path.join("bench_results", f"{args.name}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_text_atomic(out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0 if record["agreement_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
