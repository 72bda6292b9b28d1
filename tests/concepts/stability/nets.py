"""A tiny linear + ReLU network with float64 NumPy references (not a test
module: the attribution and instability tests share it)."""

import jax.numpy as jnp
import numpy as np

N, H, W, CIN, C, HID, K = 3, 3, 3, 2, 4, 5, 3
T = np.array([0, 2, 1])


def net(seed=0, dtype=jnp.float32):
    """x -> act = relu(x V) (layer "act") -> hidden = relu(act M + c) (layer
    "hidden") -> logits = hidden.reshape(N, -1) U; float32 JAX model and the
    float64 NumPy logit of one sample as a function of `act`; `f.head` is the
    network after "act"."""
    rng = np.random.default_rng(seed)
    v, m = rng.normal(size=(CIN, C)), rng.normal(size=(C, HID))
    c, u = rng.normal(size=HID) * 0.3, rng.normal(size=(H * W * HID, K))
    v32, m32, c32, u32 = (jnp.asarray(a, dtype) for a in (v, m, c, u))

    def hidden_of(act):
        return jnp.maximum(
            jnp.einsum("nhwc,cd->nhwd", act, m32) + c32[None, None, None], 0.0
        )

    def f(x):
        act = jnp.maximum(jnp.einsum("nhwi,ic->nhwc", x, v32), 0.0)
        hidden = hidden_of(act)
        return hidden.reshape(len(x), -1) @ u32, {"act": act, "hidden": hidden}

    f.head = lambda act: hidden_of(act).reshape(len(act), -1) @ u32  # after "act"

    def act_of(x):  # float64, one sample
        return np.maximum(x @ v, 0.0)

    def logit(a, t):  # float64, one sample's act (H, W, C)
        return np.maximum(a @ m + c, 0.0).reshape(-1) @ u[:, t]

    def grad(a, t):  # float64 analytic d logit_t / d act
        z = a @ m + c
        return ((z > 0) * u[:, t].reshape(H, W, HID)) @ m.T

    return f, act_of, logit, grad


def x_of(seed=1):
    return np.random.default_rng(seed).normal(size=(N, H, W, CIN)).astype(np.float32)
