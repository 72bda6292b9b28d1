"""Multi-view concept embeddings on background-randomised views.

Training side of Schwalbe et al. (arXiv 2504.08602), following the reference
code (gesina/bg_randomized_loce, `loce_optimizer.py` and
`experiments/01_get_bg_randomized_concept_vectors.py`; spec concepts.md §3.4,
§7.1, §1.4):

* **Multi-view LoCE** (`fit_loces`): one bias-free embedding v per object,
  fitted on its V views (the object pasted on V backgrounds) with the view
  losses **summed**. The reference spreads each LoCE over its V activation
  maps of a 512-map batch and minimises the batch mean of per-map losses, so
  v_i's gradient is the sum over its own views times a constant. Objectives:
  "loce" (the reference's "bce": Net2Vec's linear soft TP/TN, no log) and
  "loce_proper_bce" (fuzzy-weighted BCE). Defaults (`BG_CONFIG`): zero init,
  torch AdamW (lr 0.1, betas (0.9, 0.999), eps 1e-8, decoupled weight decay
  0.01), 30 full-batch steps, targets on the 80 x 80 grid, batch scale of 512
  activation maps. The fit is `loce.fit.fit_batch` / `fit_sharded` (one
  AdamW per object, vmapped and sharded over objects), which already sums
  view losses; Adam being per-coordinate, this equals the reference's
  batched fit up to the loss scale seen through eps.
* **Multi-view Net2Vec** (`fit_net2vec`): one bias-free vector per concept
  from all views of all its objects, each view one sample: shuffled once,
  the order repeated for 30 epochs and chunked into batches of 512 (batches
  straddle epochs), one AdamW step per batch with a fresh optimizer warm-
  started from the previous vector (`loce.reference.fit_shared`).
* **GloCE** (`fit_gloces`, `gloce`): the plain, unnormalised mean of the
  multi-view LoCEs of a concept.

Targets live on the grid (`grid_targets`: torch bilinear, align_corners=False,
no anti-aliasing, as the reference resizes masks); activations stay native
(C, h, w) and the fits upsample the logit map, which equals upsampling the
activations (bilinear is linear and channel-wise).

Reference quirk (found running the reference optimiser in torch 2.13, not
in the spec): the LoCEs are spread over their views with
`expand(...).reshape(...)` once, before the step loop. With two or more LoCEs
in a batch that reshape is a copy, so every step's forward pass uses the
*initial* LoCEs: the gradient stays the one at v0 and the 30 AdamW steps move
each coordinate by about lr * sign(g0) (minus decay), reaching about
-2.96 sign(g0) from zeros. With V = 1 (vanilla) or one LoCE per batch the
spread is a view and the fit is correct. `fit_loces(stale_spread=True)`
reproduces this; the default is the paper's summed-loss fit.

Reconstruction choices: the loss scale is the full batch's (512 maps) for
every object, where the reference's last, partial batch (e.g. 50 objects in
batches of 16) uses its own size; only Adam's eps sees the difference.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.concepts.background.bias import GRID
from jaxcxai.concepts.loce import fit, objectives, projection, reference
from jaxcxai.concepts.loce.objectives import BG_CONFIG, LoceConfig
from jaxcxai.data.resample import resize

__all__ = [
    "BATCH",
    "EPOCHS",
    "METHODS",
    "fit_gloces",
    "fit_loces",
    "fit_net2vec",
    "gloce",
    "grid_targets",
    "method_config",
    "multiview_loss",
    "stale_objects",
]

BATCH = 512  # activation maps per batch (LoCE: 512 // V objects per batch)
EPOCHS = 30  # LoCE: full-batch steps; Net2Vec: passes over the views
# The reference's `ce_method` -> objective (experiment script OBJECTIVE_TYPES).
METHODS = {
    "loce": "net2vec",  # the reference's "bce"
    "loce_proper_bce": "proper_bce",
    "net2vec": "net2vec",
    "net2vec_proper_bce": "proper_bce",
}


def method_config(method: str = "loce", **overrides) -> LoceConfig:
    """`BG_CONFIG` with the objective of a reference `ce_method` (+ overrides)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
    return dataclasses.replace(BG_CONFIG, objective=METHODS[method], **overrides)


def grid_targets(masks, grid=GRID) -> jax.Array:
    """(..., H, W) masks -> (..., T, T) soft float32 targets (torch bilinear)."""
    return resize(jnp.asarray(masks, jnp.float32), tuple(grid), "bilinear")


def _check(acts, targets, alphas):
    acts = jnp.asarray(acts)
    targets = jnp.asarray(targets, jnp.float32)
    if acts.ndim != 5 or targets.ndim != 4 or acts.shape[:2] != targets.shape[:2]:
        raise ValueError(
            "expected acts (N, V, C, h, w) and targets (N, V, T, T) with the "
            f"same (N, V); got {acts.shape} and {targets.shape}"
        )
    if alphas is None:
        alphas = objectives.alpha_from_target(targets)
    alphas = jnp.broadcast_to(jnp.asarray(alphas, jnp.float32), targets.shape[:2])
    return acts, targets, alphas


def multiview_loss(v, acts, targets, alphas=None, *, config=BG_CONFIG):
    """The objective a multi-view LoCE minimises: scale * sum over views.

    Args:
      v: (C,) embedding.
      acts: (V, C, h, w) native activations of one object's views.
      targets: (V, T, T) soft targets on the grid.
      alphas: (V,) balance weights; None = 1 - mean(t > 0) per view.
      config: `LoceConfig`; its objective and `scale()` (the reference's
        B**-batch_power, B = `reference_batch`).

    Returns:
      Scalar loss.
    """
    targets = jnp.asarray(targets, jnp.float32)
    if alphas is None:
        alphas = objectives.alpha_from_target(targets)
    z = projection.logits(v, acts, targets.shape[-2:], mode=config.interp)
    obj = objectives.get_objective(config.objective).fn
    per_view = jax.vmap(obj, in_axes=(0, 0, 0, None))(z, targets, alphas, v)
    return config.scale() * jnp.sum(per_view)


def stale_objects(n: int, n_views: int, batch: int = BATCH) -> np.ndarray:
    """(n,) bool: objects whose reference fit has the stale spread.

    The reference fits `max(1, batch // n_views)` objects per batch; an
    object is affected when V > 1 and its batch holds >= 2 objects.
    """
    per = max(1, batch // n_views)
    sizes = np.minimum(per, n - (np.arange(n) // per) * per)
    return (n_views > 1) & (sizes >= 2)


@functools.partial(jax.jit, static_argnames=("config",))
def _stale_fit(acts, targets, alphas, config):
    def one(a, t, al):
        v0 = objectives.init_vector(a.shape[1], config)
        g0 = jax.grad(multiview_loss)(v0, a, t, al, config=config)
        return objectives.minimize(lambda v, _: jnp.vdot(g0, v), v0, config)[0]

    return jax.vmap(one)(acts, targets, alphas)


def fit_loces(
    acts,
    targets,
    alphas=None,
    *,
    method: str = "loce",
    config: LoceConfig | None = None,
    mesh=None,
    micro_batch: int | None | str = "auto",
    stale_spread: bool = False,
) -> jax.Array:
    """Multi-view LoCEs: one embedding per object from its V views.

    Args:
      acts: (N, V, C, h, w) native activations (V = 1: vanilla LoCEs).
      targets: (N, V, T, T) soft targets on the grid (`grid_targets`).
      alphas: (N, V) or None (1 - mean(t > 0) per view).
      method: "loce" or "loce_proper_bce" (ignored when `config` is given).
      config: a `LoceConfig`; default `method_config(method)`.
      mesh: shard objects over its `data` axis (`loce.fit.fit_sharded`).
      micro_batch: see `loce.fit.fit_batch`.
      stale_spread: reproduce the reference's stale multi-view forward pass
        (module docstring) for the objects `stale_objects` flags, with
        batches of `config.reference_batch` maps; zeros / ones init only.

    Returns:
      (N, C) float32 LoCEs.
    """
    acts, targets, alphas = _check(acts, targets, alphas)
    config = method_config(method) if config is None else config
    if stale_spread and config.init not in ("zeros", "ones"):
        raise ValueError(f"stale_spread needs zeros / ones init, got {config.init!r}")
    if mesh is not None:
        out = fit.fit_sharded(
            acts, targets, alphas, config=config, mesh=mesh, micro_batch=micro_batch
        )
    else:
        out = fit.fit_batch(
            acts, targets, alphas, config=config, micro_batch=micro_batch
        )
    if not stale_spread:
        return out
    stale = stale_objects(acts.shape[0], acts.shape[1], config.reference_batch)
    if not stale.any():
        return out
    quirk = _stale_fit(acts, targets, alphas, config)
    return jnp.where(jnp.asarray(stale)[:, None], quirk, out)


def fit_net2vec(
    acts,
    targets,
    alphas=None,
    *,
    method: str = "net2vec",
    config: LoceConfig | None = None,
    batch_size: int = BATCH,
    epochs: int = EPOCHS,
    key=None,
) -> jax.Array:
    """Multi-view Net2Vec: one vector per concept from all views of its objects.

    Every view is one sample (N * V of them); see `loce.reference.fit_shared`
    for the schedule (fresh AdamW per batch of `batch_size`, `epochs` passes,
    one shuffle with `key`, none without).

    Args:
      acts: (N, V, C, h, w); targets: (N, V, T, T); alphas: (N, V) or None.
      method: "net2vec" or "net2vec_proper_bce" (ignored given `config`).
      config: a `LoceConfig` (its `steps` is unused); default from `method`.

    Returns:
      (C,) float32 concept vector.
    """
    acts, targets, alphas = _check(acts, targets, alphas)
    check_finite({"acts": acts, "targets": targets, "alphas": alphas})
    config = method_config(method) if config is None else config
    n, v = acts.shape[:2]
    return reference.fit_shared(
        acts.reshape((n * v,) + acts.shape[2:]),
        targets.reshape((n * v,) + targets.shape[2:]),
        alphas.reshape(n * v),
        config=config,
        batch_size=int(batch_size),
        epochs=int(epochs),
        key=key,
    )


def gloce(loces, labels) -> tuple[np.ndarray, jax.Array]:
    """GloCE: the plain mean LoCE per label, (classes (K,), (K, C))."""
    return fit.gloce(loces, labels)


def fit_gloces(acts, targets, labels, alphas=None, **fit_kwargs):
    """Multi-view LoCEs of all objects, then their GloCE per label.

    Args:
      acts, targets, alphas: as `fit_loces`; labels: (N,) concept per object.
      **fit_kwargs: passed to `fit_loces` (method, config, mesh, ...).

    Returns:
      (classes (K,), GloCEs (K, C), LoCEs (N, C)).
    """
    loces = fit_loces(acts, targets, alphas, **fit_kwargs)
    classes, means = gloce(loces, labels)
    return classes, means, loces
