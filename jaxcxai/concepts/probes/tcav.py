"""TCAV in bulk: many CAVs per call, directional derivatives via `jax.vjp`.

A CAV (concept activation vector, TCAV: Kim et al., ICML 2018; a
reconstruction of the standard method as commonly described) is the unit
normal of a linear classifier separating layer activations f_l(x) of
concept examples (label 1) from those of random examples (label 0).
`fit_cavs` fits one CAV for every (concept k, random set r) pair, K x R
classifiers in one call:

* "logistic": L2-regularized logistic regression,
  J(w, b) = mean_i log(1 + exp(-y_i (w.x_i + b))) + alpha/2 ||w||^2;
* "hinge": the same with the hinge loss max(0, 1 - m), the objective of
  scikit-learn's `SGDClassifier` (TCAV's default, alpha = 0.01), here
  quadratically smoothed over a band of width `hinge_smoothing` below the
  margin so it can be solved with L-BFGS (exact hinge as the width -> 0);
* "sgd": scikit-learn's `SGDClassifier` itself, the same hinge objective
  stopped where TCAV's defaults stop it (max_iter 1000, tol 1e-3), with
  scikit-learn's own shuffles (`sgd`): TCAV's CAVs, optimizer noise included;
* "mean_diff": the closed-form mean(concept) - mean(random) (FastCAV-style).

Solver (an exact reformulation, no approximation): with n = n_c + n_r, the
optimal w lies in the span of the (centered) examples, w = X^T beta. We
compute every pair's Gram matrix G = X X^T from three batched GEMMs (the
cross block concept x random dominates the cost: K R n_c n_r d MACs) and run
L-BFGS on the n coefficients beta with the inner product of w-space
(beta1 . G beta2), so it takes exactly the steps primal L-BFGS would take,
at O(n^2) instead of O(n d) per matrix-vector product. A fixed number of
steps runs vmapped over the K x R pairs; then w = X^T beta. The bias is not
regularized, as in scikit-learn, so centering all examples by their common
mean changes nothing but conditioning. Singular G (d < n, duplicates) is fine:
w is unique even where beta is not.

TCAV scores use directional derivatives of a class logit w.r.t. the layer
activations (`jax.vjp` through a `head_fn`); `run_tcav` puts fitting,
scores and the significance test (`stats`) together for one layer.

Non-finite activations or CAVs raise `NonFiniteError` at each entry point,
and so do non-finite derivatives (a head with broken weights): a NaN
derivative is not "> 0", so it would silently count as a negative vote and
give TCAV scores of 0 with finite p-values.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes import stats

# Re-exported: CAV fitting lives in `cavs`, its solver in `solver`.
from jaxcxai.concepts.probes.cavs import _fit_pairs
from jaxcxai.concepts.probes.cavs import fit_cavs as fit_cavs
from jaxcxai.concepts.probes.solver import _HI

__all__ = [
    "directional_derivatives",
    "tcav_scores",
    "run_tcav",
]


def directional_derivatives(
    head_fn: Callable[[jax.Array], jax.Array],
    acts: jax.typing.ArrayLike,
    target: int | jax.typing.ArrayLike,
    cavs: jax.typing.ArrayLike,
    batch_size: int | None = None,
) -> jax.Array:
    """Conceptual sensitivities S(x) = grad_f h_target(f(x)) . v per CAV.

    Args:
      head_fn: the network from layer l to the logits, (B, *S) -> (B, classes).
        It must treat examples independently (BatchNorm in eval mode) so the
        gradient of the summed class logits is the per-example gradient.
      acts: (N, *S) layer-l activations of the examples (e.g. (N, H, W, C)).
      target: class index, scalar or (N,) per example.
      cavs: (..., d) CAV directions; d = prod(S) for flattened CAVs, or
        d = S[-1] (channels) for spatially pooled CAVs, whose directional
        derivative moves every position along v (summed spatial gradient).
      batch_size: examples per backward pass (default: all at once).

    Returns:
      (..., N) directional derivatives.

    Raises:
      NonFiniteError: `acts`, `cavs` or the derivatives (the head's
        gradient) hold NaN or inf.
    """
    acts, cavs = jnp.asarray(acts), jnp.asarray(cavs)
    check_finite({"acts": acts, "cavs": cavs})
    return _checked_derivatives(_derivatives(head_fn, acts, target, cavs, batch_size))


def _checked_derivatives(deriv: jax.Array) -> jax.Array:
    check_finite(
        {"directional derivatives": deriv},
        hint="the gradient of head_fn is not finite (broken weights?)",
    )
    return deriv


def _derivatives(head_fn, acts, target, cavs, batch_size):
    """`directional_derivatives` of finite arrays, unchecked."""
    n, feat = acts.shape[0], acts.shape[1:]
    target = jnp.broadcast_to(jnp.asarray(target, jnp.int32), (n,))
    d = cavs.shape[-1]
    flat = d == int(jnp.size(acts) // n)
    if not flat and d != feat[-1]:
        raise ValueError(
            f"CAV size {d} matches neither the flattened activations "
            f"{int(jnp.size(acts) // n)} nor the channels {feat[-1]}"
        )
    batch_size = n if batch_size is None else batch_size
    if n % batch_size:
        raise ValueError(f"batch_size {batch_size} must divide N={n}")

    def grads(batch):
        a, t = batch
        logits, vjp = jax.vjp(head_fn, a)
        (g,) = vjp(jax.nn.one_hot(t, logits.shape[-1], dtype=logits.dtype))
        return (
            g.reshape(g.shape[0], -1) if flat else g.reshape(g.shape[0], -1, d).sum(1)
        )

    split = (acts.reshape((n // batch_size, batch_size) + feat),
             target.reshape(n // batch_size, batch_size))  # fmt: skip
    g = jax.lax.map(grads, split).reshape(n, -1)
    return jnp.einsum("...d,nd->...n", cavs, g, precision=_HI)


def tcav_scores(derivatives: jax.typing.ArrayLike) -> jax.Array:
    """TCAV score: fraction of examples with a positive derivative; (..., N) -> (...).

    Raises:
      NonFiniteError: a derivative is NaN or inf (it has no sign).
    """
    derivatives = jnp.asarray(derivatives)
    check_finite({"derivatives": derivatives})
    return jnp.mean(derivatives > 0, axis=-1)


def run_tcav(
    head_fn: Callable[[jax.Array], jax.Array],
    class_acts: jax.typing.ArrayLike,
    target: int | jax.typing.ArrayLike,
    concept_feats: jax.typing.ArrayLike,
    random_feats: jax.typing.ArrayLike,
    *,
    method: str = "logistic",
    alpha: float = 0.01,
    steps: int | None = None,
    num_tests: int | None = None,
    batch_size: int | None = None,
    random_state: int = 0,
    mesh: jax.sharding.Mesh | None = None,
) -> dict:
    """TCAV for one (layer, class): K concepts x R random runs in one call.

    Concept CAVs are fitted against each of the R random sets; the
    random-vs-random baseline fits random set 0 against sets 1..R-1 (TCAV's
    convention). Scores of both go into `stats.tcav_significance`.

    Args:
      head_fn: layer -> logits (see `directional_derivatives`).
      class_acts: (N, *S) layer activations of the class's examples.
      target: the class index (or (N,) indices).
      concept_feats: (K, n_c, d) CAV features of the concept sets (`flatten_acts`
        of (K, n_c, *S) maps; d = C for spatially pooled CAVs).
      random_feats: (R, n_r, d) features of R >= 3 random sets.
      method, alpha, steps: as `fit_cavs`.
      num_tests: hypotheses for the Bonferroni correction (default K).
      batch_size: examples per backward pass.
      random_state: "sgd" only: scikit-learn's `random_state` of every fit.
      mesh: optional mesh over whose `data` axis the random runs of the CAV
        fits are split (see `fit_cavs`).

    Returns:
      Dict with `cavs` (K x R), `scores` (K, R), `random_scores` (R - 1,) and
      the per-concept entries of `stats.tcav_significance`.
    """
    random_feats = jnp.asarray(random_feats, jnp.float32)
    if random_feats.shape[0] < 3:
        raise ValueError(
            f"run_tcav needs at least 3 random sets for the t-test, got "
            f"{random_feats.shape[0]}"
        )
    class_acts = jnp.asarray(class_acts)
    concept_feats = jnp.asarray(concept_feats, jnp.float32)
    check_finite({"class_acts": class_acts, "concept_feats": concept_feats,
                  "random_feats": random_feats})  # fmt: skip
    kw = dict(method=method, alpha=alpha, steps=steps, hinge_smoothing=0.05,
              mesh=mesh, random_state=random_state)  # fmt: skip
    cavs = _fit_pairs(concept_feats, random_feats, **kw)
    rand = _fit_pairs(random_feats[:1], random_feats[1:], **kw)
    k, r = cavs.direction.shape[:2]
    dirs = jnp.concatenate(
        [cavs.direction.reshape(k * r, -1), rand.direction.reshape(r - 1, -1)]
    )
    deriv = _derivatives(head_fn, class_acts, target, dirs, batch_size)
    scores = jnp.mean(_checked_derivatives(deriv) > 0, axis=-1)
    concept_scores, random_scores = scores[: k * r].reshape(k, r), scores[k * r :]
    sig = stats.tcav_significance(
        np.asarray(concept_scores), np.asarray(random_scores), num_tests=num_tests
    )
    return {
        "cavs": cavs,
        "scores": concept_scores,
        "random_scores": random_scores,
        **sig,
    }
