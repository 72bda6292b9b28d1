"""Small models with closed-form gradients, in JAX and float64 NumPy.

Not a test module: the attribution tests share these. Every model comes as
a JAX function and the NumPy quantities its tests compare with.
"""

import jax
import jax.numpy as jnp
import numpy as np


def linear(seed=0, d=6, k=3):
    """f(x) = x W + b; the gradient of logit t is W[:, t]."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    w32, b32 = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)
    return (lambda x: x @ w32 + b32[None]), w, b


def quadratic(seed=0, d=6, k=3):
    """S_t(x) = x A_t x / 2 + w_t x, A_t symmetric; grad_t(x) = A_t x + w_t."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    a = (a + a.transpose(0, 2, 1)) / 2
    w = rng.normal(size=(k, d))
    a32, w32 = jnp.asarray(a, jnp.float32), jnp.asarray(w, jnp.float32)

    def f(x):
        return 0.5 * jnp.einsum("nd,kde,ne->nk", x, a32, x) + x @ w32.T

    def grad(x, t):  # float64, one sample
        return a[t] @ x + w[t]

    def value(x, t):
        return 0.5 * x @ a[t] @ x + w[t] @ x

    return f, grad, value


def two_layer(seed=0, h=4, w=5, cin=2, c=3, k=4, smooth=False):
    """A 1x1 conv + ReLU (layer "conv", NHWC), then tanh and a dense head.

    A = relu(x V), logits = tanh(A).reshape(N, -1) U. The gradient of logit
    t at A is (1 - tanh(A)^2) * U[:, t] reshaped to (h, w, c). `smooth`
    replaces the ReLU by softplus (no kinks on the IG path).
    """
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(cin, c))
    u = rng.normal(size=(h * w * c, k))
    v32, u32 = jnp.asarray(v, jnp.float32), jnp.asarray(u, jnp.float32)

    def f(x):
        pre = jnp.einsum("nhwi,ic->nhwc", x, v32)
        act = jax.nn.softplus(pre) if smooth else jnp.maximum(pre, 0.0)
        logits = jnp.tanh(act).reshape(act.shape[0], -1) @ u32
        return logits, {"conv": act}

    def head(act):
        return jnp.tanh(act).reshape(act.shape[0], -1) @ u32

    def reference(x, t):  # float64: (A, dS_t/dA) of one sample
        act = np.maximum(np.einsum("hwi,ic->hwc", x, v), 0.0)
        g = (1 - np.tanh(act) ** 2) * u[:, t].reshape(h, w, c)
        return act, g

    def logits(x):  # float64 batch
        pre = np.einsum("nhwi,ic->nhwc", x, v)
        act = np.logaddexp(pre, 0.0) if smooth else np.maximum(pre, 0.0)
        return np.tanh(act).reshape(len(x), -1) @ u

    return f, head, reference, logits
