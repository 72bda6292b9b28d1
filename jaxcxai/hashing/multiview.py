"""Hash nets applied to several views, with a hand-written backward pass.

DUCH and CHNR call each hash net once per view, each call with its own
BatchNorm statistics (as in the reference code). This module computes those
calls for both nets in one `jax.custom_vjp` function, for speed on small CPU
hosts (`python -m eval.bench duch_epoch`); the math is `models.HashNet` in
training mode, exactly:

  A = X W1 + b1;  X^ = (A - mean_v) / sqrt(var_v + eps) (biased variance
  over the view's batch);  H = relu(s X^ + beta);  out = tanh(H W2 + b2).

What differs from differentiating the Flax module:

  * The BatchNorm gradient is the closed form
    dA = k (dH' - mean(dH') - X^ mean(dH' X^)), k = s / sqrt(var + eps),
    dH' = relu'(.) dH, from one pass of column reductions over the
    centred activations C = A - mean, which are stored instead of A
    (X^ = r C is never materialised).
  * b1 cancels in A - mean, so C comes from X W1 alone and b1's gradient
    is exactly 0 (autodiff gives rounding noise there).
  * The weight gradient X^T dA is a product with a materialised X^T, and
    fc2's H^T dZ is computed as (dZ^T H)^T: XLA:CPU's products that
    contract the batch (leading) axis of both operands ran 1.3-5x slower.

(Forcing the views to run one after another, with artificial data
dependencies, measured 2-8% slower once host memory was reused
(`jaxcxai.hostmem`), so XLA schedules them freely.)

`tests/test_hashing_fastpath.py` checks codes, statistics, gradients and
whole DUCH steps against autodiff through the Flax module in float64.
"""

import functools

import jax
import jax.numpy as jnp

__all__ = ["hashnet_views"]


def _view_forward(params, x, eps):
    """One training-mode call on (N, D) inputs: out (N, K), the batch
    (mean, biased var) of shape (H,) each, and the backward's residuals."""
    fc1, bn, fc2 = params["fc1"]["dense"], params["bn"], params["fc2"]["dense"]
    # The bias b1 cancels in A - mean (it only shifts the mean), so the
    # centred activations come straight from X W1.
    xw = x @ fc1["kernel"]
    mean_xw = jnp.mean(xw, axis=0)
    centred = xw - mean_xw[None]
    var = jnp.mean(jnp.square(centred), axis=0)
    r = jax.lax.rsqrt(var + eps)
    k = r * bn["scale"]
    h = jnp.maximum(centred * k[None] + bn["bias"][None], 0.0)
    out = jnp.tanh(h @ fc2["kernel"] + fc2["bias"][None])
    return out, (mean_xw + fc1["bias"], var), (x, centred, r, h, out)


def _view_backward(params, saved, dout):
    """Parameter gradient of sum(dout * out) for one view."""
    x, centred, r, h, out = saved
    n = x.shape[0]
    fc2_kernel, scale = params["fc2"]["dense"]["kernel"], params["bn"]["scale"]
    dz = dout * (1.0 - jnp.square(out))
    dh = jnp.where(h > 0.0, dz @ fc2_kernel.T, 0.0)
    # With C = A - mean and X^ = r C: d_beta = sum dH', d_scale = r sum dH' C,
    # and dA = k dH' - (k / n) d_beta - (k r^2 / n) C sum(dH' C).
    d_beta = jnp.sum(dh, axis=0)
    dh_c = jnp.sum(dh * centred, axis=0)
    k = r * scale
    da = k[None] * dh - (k / n)[None] * (d_beta[None] + (r * r * dh_c)[None] * centred)
    # Materialised: fused into the product below, this pass measured slower.
    da = jax.lax.optimization_barrier(da)
    # A materialised X^T makes the product a plain (D, N) x (N, H) one,
    # measured 1.3x faster than contracting over X's leading axis; the
    # barrier keeps XLA from folding the transpose back into the dot.
    x_t = jax.lax.optimization_barrier(jnp.transpose(x))
    # fc2's gradient H^T dZ (H, K), contracted over the batch axis, measured
    # 5x slower than (dZ^T H)^T with the (K, H) product materialised.
    fc2_grad = jax.lax.optimization_barrier(dz.T @ h).T
    return {
        "fc1": {
            "dense": {
                "kernel": x_t @ da,
                # The loss does not depend on b1 in training mode (it
                # cancels in A - mean): its gradient is exactly 0, where
                # autodiff gives rounding noise that Adam would scale up to
                # learning-rate-sized steps.
                "bias": jnp.zeros_like(params["fc1"]["dense"]["bias"]),
            }
        },
        "bn": {"scale": r * dh_c, "bias": d_beta},
        "fc2": {"dense": {"kernel": fc2_grad, "bias": jnp.sum(dz, axis=0)}},
    }


def _forward_all(params_seq, views_seq, eps):
    return [
        [_view_forward(p, x, eps) for x in xs] for p, xs in zip(params_seq, views_seq)
    ]


def _outputs(outs):
    codes = tuple(tuple(o[0] for o in net) for net in outs)
    stats = tuple(tuple(o[1] for o in net) for net in outs)
    return codes, stats


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def hashnet_views(params_seq: tuple, views_seq: tuple, eps: float = 1e-5):
    """Training-mode HashNets on their views, one BatchNorm call per view.

    Args:
      params_seq: tuple of HashNet parameter trees {'fc1', 'bn', 'fc2'}
        (Flax layout), one per net.
      views_seq: per net, a tuple of V (N, D_net) inputs (same N).
      eps: BatchNorm epsilon.

    Returns:
      (codes, stats): per net, a tuple of V (N, K) codes in (-1, 1), and a
      tuple of V (batch mean (H,), biased batch variance (H,)) for the
      caller's running-statistics update. No gradient flows through the
      statistics (their cotangents are ignored) or into the inputs.
    """
    return _outputs(_forward_all(params_seq, views_seq, eps))


def _fwd(params_seq, views_seq, eps):
    outs = _forward_all(params_seq, views_seq, eps)
    saved = tuple(tuple(o[2] for o in net) for net in outs)
    return _outputs(outs), (params_seq, saved, views_seq)


def _bwd(eps, residuals, cotangents):
    del eps
    params_seq, saved_seq, views_seq = residuals
    d_codes_seq, _ = cotangents  # the statistics carry no gradient
    grads = [None] * len(params_seq)
    for i in reversed(range(len(params_seq))):
        for saved, dout in zip(saved_seq[i], d_codes_seq[i]):
            g = _view_backward(params_seq[i], saved, dout)
            grads[i] = g if grads[i] is None else jax.tree.map(jnp.add, grads[i], g)
    # The inputs are data: a zero gradient, removed as dead code.
    return tuple(grads), jax.tree.map(jnp.zeros_like, views_seq)


hashnet_views.defvjp(_fwd, _bwd)
