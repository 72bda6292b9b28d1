"""Running an adversarial-dissection study end to end.

`adversarial(study, workdir, backbone)` follows the reconstruction of
Mikriukov et al. 2024 (arXiv 2403.16782; spec xai.md 2.2) on each model
source (`models`):

* attacks: every configured attack (`attacks.ATTACKS`) of every source image
  towards every target class (`attacks.over_targets`), per l_inf budget
  (C&W once, unbounded l2), in pixel space [0, 1]; the attack success rate
  (ASR) over the (image, target) pairs whose source class is not the target;
* dissection (`dissection.dissect`) of the successful examples at the
  largest budget: latent perturbations, the global decomposition and
  component ablation (F2), target specificity (F3) and the concept
  composition of clean source, adversarial and clean target activations
  (F1, ICE/NMF);
* on the SynthAerial backbone, the supervised probes (`probing.probe`): TCAV
  scores and Net2Vec IoUs of SynthAerial concepts on clean vs adversarial
  images, and the planted check (boat CAV vs perturbation towards harbor).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from jaxcxai.adversarial import attacks, dissection, figures, models, probing, report
from jaxcxai.adversarial import study as study_lib
from jaxcxai.adversarial.study import AdversarialStudy, eps_name
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic

__all__ = ["adversarial", "attack_kwargs", "attack_model", "load_sources"]

LO, HI = 0.0, 1.0  # pixel range of every source's images


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[adversarial] {text}", flush=True)


def attack_kwargs(st: AdversarialStudy, name: str, eps: float | None) -> dict:
    """The settings of attack `name` at l_inf budget `eps` (C&W: None)."""
    a = st.attack
    if name == "cw_l2":
        return dict(c=a.cw_c, binary_steps=a.cw_binary_steps, steps=a.cw_steps,
                    lr=a.cw_lr, kappa=a.cw_kappa, lo=LO, hi=HI)  # fmt: skip
    if name == "fgsm":
        return dict(eps=eps, lo=LO, hi=HI)
    kw = dict(eps=eps, alpha=a.alpha * eps, steps=a.steps, lo=LO, hi=HI)
    if name == "pgd":
        kw["restarts"] = a.restarts
    if name == "mifgsm":
        kw["momentum"] = a.momentum
    return kw


def runs(st: AdversarialStudy, model: str) -> list[tuple[str, float | None]]:
    """(attack, eps) pairs run on `model`; C&W once with eps None. The
    ImageNet networks run `photos.attacks`, the digits CNN `digits.attacks`
    (all of `attack.names` when empty)."""
    names, only = st.attack.names, ()
    if model in ("mobilenet_v2", "efficientnet_lite0"):
        only = st.photos.attacks
    elif model in ("digits", "fashion_mnist"):
        only = st.digits.attacks
    names = [n for n in names if n in only] if only else names
    return [(n, None) if n == "cw_l2" else (n, float(e))
            for n in names for e in ((None,) if n == "cw_l2" else st.attack.eps)]  # fmt: skip


def attack_model(st: AdversarialStudy, src: models.Source, key, progress=False):
    """Every (attack, eps) on every (image, target) pair of one source.

    Returns:
      (rows, results): rows of the ASR table {"model", "attack", "eps",
      "asr", "n", "per_target", "linf", "l2"}; results {(attack, eps):
      numpy `AttackResult` with (T, N) leading axes}.
    """
    valid = src.labels[None, :] != src.targets[:, None]  # (T, N)
    rows, out = [], {}
    for i, (name, eps) in enumerate(runs(st, src.name)):
        t0 = time.perf_counter()
        r = attacks.over_targets(name, src.apply, src.images, src.targets,
                                 jax.random.fold_in(key, i), **attack_kwargs(st, name, eps))  # fmt: skip
        r = jax.tree.map(np.asarray, r)
        out[name, eps] = r
        hit = r.success & valid
        per = {src.class_names[int(t)]: float(hit[j].sum() / max(valid[j].sum(), 1))
               for j, t in enumerate(src.targets)}  # fmt: skip
        rows.append({"model": src.name, "attack": name, "eps": eps_name(eps),
                     "asr": float(hit.sum() / max(valid.sum(), 1)), "n": int(valid.sum()),
                     "per_target": per, "linf": float(r.linf[valid].mean()),
                     "l2": float(r.l2[valid].mean())})  # fmt: skip
        _say(progress, f"{src.name} {name} eps {eps_name(eps)}: ASR "
                       f"{rows[-1]['asr']:.2f} in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return rows, out


def load_sources(st: AdversarialStudy, backbone, key, progress=False) -> list:
    """The `models.Source` of every configured model, in order."""
    out = []
    for i, name in enumerate(st.models):
        t0 = time.perf_counter()
        if name == "synthaerial":
            if backbone is None:
                raise ValueError("models has 'synthaerial' but no backbone was given")
            src = models.synthaerial_source(st, backbone)
        elif name in ("mobilenet_v2", "efficientnet_lite0"):
            src = models.photo_source(st, name)
        else:
            src = models.digits_source(st, name, jax.random.fold_in(key, i))
        out.append(src)
        _say(progress, f"{name}: {len(src.images)} source images x "
                       f"{len(src.targets)} targets in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return out


def _clean(src: models.Source) -> dict:
    logits, _ = jax.jit(src.apply)(src.images)
    pred = np.asarray(np.argmax(logits, -1))
    return {"accuracy": float(np.mean(pred == src.labels)), "pred": pred}


def _samples(src, results, valid, eps) -> list[dict]:
    """One successful example per target at the largest budget (figure)."""
    name = next((n for n, e in results if e == eps), None)
    if name is None:
        return []
    r, out = results[name, eps], []
    for j, t in enumerate(src.targets):
        hit = np.flatnonzero(r.success[j] & valid[j])
        if len(hit):
            n = int(hit[0])
            out.append({"model": src.name, "attack": name, "eps": eps, "clean": src.images[n],
                        "adv": r.x_adv[j, n], "source": src.class_names[int(src.labels[n])],
                        "target": src.class_names[int(t)]})  # fmt: skip
    return out


def adversarial(st: AdversarialStudy, workdir: str, backbone=None,
                progress: bool = True) -> dict:  # fmt: skip
    """The whole study: attacks, dissection, probes, report, figures.

    Args:
      st: the settings (`study.check_study` is run first).
      workdir: where the arrays, results, report and figures go.
      backbone: the `TrainedBackbone` of the "synthaerial" model (or None).
      progress: print a line per step.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `adversarial_results.json`)}.
    """
    study_lib.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    key, seconds = jax.random.key(st.seed), {}
    t0 = time.perf_counter()
    sources = load_sources(st, backbone, jax.random.fold_in(key, 1), progress)
    seconds["models"] = time.perf_counter() - t0
    eps_max = max(st.attack.eps)
    per_model, asr, arrays, samples = {}, [], {}, []
    for m, src in enumerate(sources):
        k = jax.random.fold_in(key, 100 + m)
        t0 = time.perf_counter()
        clean = _clean(src)
        rows, results = attack_model(st, src, jax.random.fold_in(k, 0), progress)
        seconds[f"{src.name}.attacks"] = time.perf_counter() - t0
        asr += rows
        valid = src.labels[None, :] != src.targets[:, None]
        samples += _samples(src, results, valid, eps_max)
        t0 = time.perf_counter()
        kept = {key_: r for key_, r in results.items() if key_[1] in (None, eps_max)}
        dis, dis_arrays = dissection.dissect(
            st, src, kept, valid, jax.random.fold_in(k, 1)
        )
        seconds[f"{src.name}.dissection"] = time.perf_counter() - t0
        _say(progress, f"{src.name}: dissected {dis['num_examples']} successful "
                       f"examples in {seconds[f'{src.name}.dissection']:.1f} s")  # fmt: skip
        probe = None
        if src.name == "synthaerial":
            t0 = time.perf_counter()
            probe, probe_arrays = probing.probe(st, src, kept, valid, dis_arrays,
                                                jax.random.fold_in(k, 2))  # fmt: skip
            dis_arrays = dis_arrays | probe_arrays
            seconds["synthaerial.probes"] = time.perf_counter() - t0
            _say(
                progress,
                f"synthaerial: probes in {seconds['synthaerial.probes']:.1f} s",
            )
        arrays[f"{src.name}.images"] = src.images
        arrays[f"{src.name}.labels"] = src.labels
        arrays[f"{src.name}.targets"] = src.targets
        for (name, eps), r in results.items():
            arrays[f"{src.name}.{name}.{eps_name(eps)}.success"] = r.success
            if eps in (None, eps_max):
                arrays[f"{src.name}.{name}.{eps_name(eps)}.x_adv"] = r.x_adv
        arrays |= {f"{src.name}.{k_}": v for k_, v in dis_arrays.items()}
        per_model[src.name] = dict(
            dissection=dis, probes=probe, info=src.info, clean_accuracy=clean["accuracy"],
            num_images=len(src.images), layers=list(src.layers),
            targets=[src.class_names[int(t)] for t in src.targets],
            sources=sorted(set(src.groups)),
        )  # fmt: skip
    t0 = time.perf_counter()
    study_lib.save_npz(os.path.join(workdir, study_lib.ARRAYS), arrays)
    results = {
        "models": list(st.models), "attacks": list(st.attack.names),
        "eps": [eps_name(e) for e in st.attack.eps], "dissect_eps": eps_name(eps_max),
        "attack": dataclasses.asdict(st.attack), "dissect": dataclasses.asdict(st.dissect),
        "asr": asr, "per_model": per_model,
        "backend": jax.default_backend(), "devices": jax.device_count(),
    }  # fmt: skip
    results["findings"] = report.findings(results)
    figs = figures.figures(results, samples, workdir)
    results["seconds"] = dict(seconds, figures=time.perf_counter() - t0)
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study_lib.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study_lib.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
