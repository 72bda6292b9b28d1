"""A gating study end to end: data, experiments, findings, report, figures.

`run_study` is what `python -m eval.gating` and the main job's `gating`
stage run: every tabular dataset of the study through
`pipeline.run_dataset`, the image experiment (`image`), the paper's findings
checked in direction (`findings`), then `arrays.npz`, `results.json`, the
report and its figures written atomically into the workdir
(Mikriukov, Montavon & Hoehne, arXiv:2603.29915).
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from jaxcxai.data import tabular, uci
from jaxcxai.metric_writers import (
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)
from jaxcxai.uncertainty import figures, findings, pipeline, report, study
from jaxcxai.uncertainty.study import GatingStudy

__all__ = ["load_dataset", "run_image", "run_study"]

# role -> the paper's dataset name in `jaxcxai.data.uci`
UCI_NAME = {role: name for name, (role, _) in uci.PAPER_FILES.items()}


def load_dataset(role: str, data_dir: str, seed: int) -> tabular.TabularSplits:
    """The embedded substitute of `role`, or the paper's file from `data_dir`."""
    if data_dir:
        return uci.load_from_dir(data_dir, UCI_NAME[role], seed)
    return tabular.load_embedded(role, seed)


def run_image(st: GatingStudy, key: jax.Array, progress: bool = False) -> tuple:
    """The image experiment: CNN with MC dropout, IG / SmoothGrad SSIM vs noise.

    Returns:
      (results, arrays): results {"source", "accuracy", "epochs", "sigmas",
      "u_mean", "ssim_mean", "xec", "ssim_by_stratum", "u_thresholds",
      "num_images"} and the per-image arrays.
    """
    from jaxcxai.uncertainty import image

    s = st.image
    t0 = time.perf_counter()
    k_train, k_run = jax.random.split(key)
    splits = image.load_images(
        s.source, seed=st.data.seed, max_per_class=s.max_per_class or None
    )
    model, variables, hist = image.train_cnn(
        splits,
        k_train,
        channels=s.channels,
        pools=s.pools,
        epochs=s.epochs,
        batch_size=s.batch_size,
    )
    if progress:
        print(f"[gating] image: CNN trained ({time.perf_counter() - t0:.0f} s)")
    idx = pipeline.subset(splits.x_test, s.num_images, st.data.seed)
    out = image.image_experiment(
        model, variables, splits.x_test[idx], splits.y_test[idx], k_run,
        sigmas=s.sigmas, num_passes=s.mc_passes, ig_steps=s.ig_steps, smooth_n=s.smooth_n,
        smooth_sigma=s.smooth_sigma,
    )  # fmt: skip
    lst = lambda v: np.asarray(v, np.float64).tolist()
    res = {
        "source": splits.name,
        "num_images": int(len(idx)),
        "image_shape": list(splits.x_test.shape[1:]),
        "num_classes": len(splits.class_names),
        "accuracy": float(hist["test_accuracy"]),
        "epochs": int(hist["epochs_run"]),
        "sigmas": lst(out["sigmas"]),
        "u_mean": lst(out["u_mean"]),
        "ssim_mean": {k: lst(v) for k, v in out["ssim_mean"].items()},
        "xec": {k: float(v) for k, v in out["xec"].items()},
        "ssim_by_stratum": {k: lst(v) for k, v in out["ssim_by_stratum"].items()},
        "u_thresholds": lst(out["u_thresholds"]),
        "seconds": time.perf_counter() - t0,
    }
    arrays = {
        "image.u": np.asarray(out["u"]),
        "image.stratum": np.asarray(out["stratum"]),
    }
    arrays |= {f"image.ssim.{k}": np.asarray(v) for k, v in out["ssim"].items()}
    if progress:
        print(f"[gating] image: done ({res['seconds']:.0f} s)", flush=True)
    return res, arrays


def run_study(st: GatingStudy, workdir: str, progress: bool = False) -> dict:
    """Runs every experiment of `st` and writes the study's files.

    Args:
      st: the settings (`study.check_study` is applied first).
      workdir: output directory (created).
      progress: print a line per experiment.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results"}.

    Raises:
      ValueError: a setting the study cannot run (before anything is written).
      DataFileNotFoundError / DataFormatError: a paper file under
        `data.data_dir` is missing or malformed.
    """
    study.check_study(st)
    splits = {r: load_dataset(r, st.data.data_dir, st.data.seed) for r in st.data.roles}
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.key(st.seed)
    results: dict = {"datasets": {}, "embedded": not st.data.data_dir}
    arrays: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for i, (role, sp) in enumerate(splits.items()):
        res, a = pipeline.run_dataset(sp, st, jax.random.fold_in(key, i), progress)
        results["datasets"][role] = res
        arrays |= a
    if "image" in st.experiments and st.image.source:
        results["image"], a = run_image(st, jax.random.fold_in(key, 1000), progress)
        arrays |= a
    results["findings"] = findings.check_findings(results)
    results["seconds"] = time.perf_counter() - t0
    write_npz_atomic(os.path.join(workdir, study.ARRAYS), arrays)
    figs = figures.write_all(results, arrays, workdir)
    md = report.markdown(st, results, figs)
    write_json_atomic(os.path.join(workdir, study.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
