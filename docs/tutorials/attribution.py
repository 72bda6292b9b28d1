# %% [markdown]
# # Attribution and explanation metrics
#
# This tutorial runs the attribution methods of `jaxcxai.attribution` and the
# metrics of `jaxcxai.metrics.explanations` on small models. The methods are
# plain gradients and saliency (Simonyan et al. 2013, arXiv 1312.6034),
# Integrated Gradients (Sundararajan et al. 2017, arXiv 1703.01365),
# SmoothGrad (Smilkov et al. 2017, arXiv 1706.03825), Grad-CAM (Selvaraju et
# al. 2017, arXiv 1610.02391), occlusion (Zeiler & Fergus 2014, arXiv
# 1311.2901) and KernelSHAP (Lundberg & Lee 2017, arXiv 1705.07874).
#
# You will:
#
# 1. train a small CNN on SynthAerial images to detect planted objects;
# 2. explain a few images with five methods, each one vmapped call over the
#    batch;
# 3. check the completeness of Integrated Gradients;
# 4. check KernelSHAP against exact Shapley values of a tiny tabular model;
# 5. score the maps with deletion curves, relevance mass and rank agreement.

# %%
import itertools
import math
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai import attribution as attr
from jaxcxai.data import synthaerial
from jaxcxai.metrics import explanations as em
from jaxcxai.models import SmallCNN, host_init
from jaxcxai.training import make_train_step, state_from_variables

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 32 if TINY else 64  # image side in pixels
N_TRAIN = 256 if TINY else 4096
STEPS = 60 if TINY else 1500  # Adam steps
N_EXPLAIN = 4 if TINY else 8  # images explained
IG_STEPS = 8 if TINY else 64
SG_COPIES = 4 if TINY else 50
print(f"tiny={TINY} size={SIZE} train images={N_TRAIN} steps={STEPS}")

# %% [markdown]
# ## A small detector on SynthAerial
#
# `synthaerial.generate` draws aerial scenes with planted objects and their
# pixel masks. The network is `SmallCNN` with a multi-label head: one logit per
# concept (airplane, car, ..., tennis court), trained with a sigmoid loss on
# `objects_present`.

# %%
data = synthaerial.generate(N_TRAIN + N_EXPLAIN, size=SIZE, seed=0)
images = data["image"].astype(np.float32) / 127.5 - 1.0  # in [-1, 1]
labels = data["objects_present"].astype(np.float32)
print("concepts:", synthaerial.CONCEPTS)

WIDTHS = (8, 16, 32) if TINY else (32, 64, 128)
model = SmallCNN(num_classes=len(synthaerial.CONCEPTS), widths=WIDTHS)
# host_init draws the initial weights with NumPy (N(0, 1/fan_in) kernels):
# compiling `model.init`'s random-number code costs seconds on XLA:CPU.
variables = host_init(model, images[:2].shape, seed=0)
opt = optax.adam(3e-3)


def loss_fn(params, batch_stats, batch, key):
    """The library's train-step contract: sigmoid BCE of the multi-label head."""
    (logits, _), upd = model.apply(
        {"params": params, "batch_stats": batch_stats}, batch["x"], train=True,
        mutable=["batch_stats"],
    )  # fmt: skip
    loss = optax.sigmoid_binary_cross_entropy(logits, batch["y"]).mean()
    return loss, (upd.get("batch_stats", {}), {})


train_step = jax.jit(make_train_step(loss_fn))


state = state_from_variables(model, opt, variables)
key = jax.random.key(0)  # the contract folds it with the step (unused here)
rng = np.random.default_rng(0)
t0 = time.time()
for step in range(STEPS):
    idx = rng.integers(0, N_TRAIN, 32 if TINY else 64)
    state, metrics = train_step(state, {"x": images[idx], "y": labels[idx]}, key)
variables = state.variables()
print(f"final training loss {float(metrics['loss']):.3f} ({time.time() - t0:.1f} s)")


@jax.jit
def f(x):
    """The explained model: (N, H, W, 3) -> ((N, 8) logits, activations)."""
    return model.apply(variables, x, train=False)


logits, _ = f(images[:N_TRAIN])
accuracy = ((logits > 0) == (labels[:N_TRAIN] > 0)).mean(axis=0)
for name, a in zip(synthaerial.CONCEPTS, np.asarray(accuracy)):
    print(f"  {name:13s} training accuracy {a:.2f}")

# %% [markdown]
# ## Five methods, one call each
#
# We explain the "building" logit of held-out images that contain a building.
# Every method takes the model function `f`, the batch and a target class;
# the batch is vmapped inside one compiled program (IG and SmoothGrad loop
# over chunks of steps or noisy copies on the host).

# %%
CONCEPT = synthaerial.CONCEPTS.index("building")
pool = np.arange(N_TRAIN, N_TRAIN + N_EXPLAIN)
extra = synthaerial.generate(
    64, size=SIZE, seed=0, start=N_TRAIN + N_EXPLAIN
)  # more candidates, to pick images that contain the concept
cand_img = np.concatenate([images[pool], extra["image"] / 127.5 - 1.0])
cand_mask = np.concatenate([data["class_mask"][pool], extra["class_mask"]])
has = (cand_mask == CONCEPT + 1).any(axis=(1, 2))
x = jnp.asarray(cand_img[has][:N_EXPLAIN], jnp.float32)
masks = cand_mask[has][:N_EXPLAIN] == CONCEPT + 1
print("explained batch:", x.shape)

# SmoothGrad's standard normal draws, (N, copies, H, W, 3); a `key=` works too.
noise = np.random.default_rng(1).standard_normal((len(x), SG_COPIES, *x.shape[1:]))
t0 = time.time()
maps = {
    "gradient x input": attr.gradient_x_input(f, x, CONCEPT),
    "Integrated Gradients": attr.integrated_gradients(f, x, CONCEPT, steps=IG_STEPS),
    "SmoothGrad": attr.smoothgrad(f, x, CONCEPT, noise=noise, sigma=0.15),
    "occlusion 4x4": attr.occlusion(f, x, CONCEPT, window=(4, 4), stride=2),
}
# Pixel maps: sum over the colour channels (SmoothGrad: magnitude).
pixel = {k: v.sum(-1) for k, v in maps.items()}
pixel["SmoothGrad"] = jnp.abs(maps["SmoothGrad"]).sum(-1)
pixel["Grad-CAM (conv2)"] = attr.grad_cam(f, x, "conv2", CONCEPT, size=(SIZE, SIZE))
print(f"five methods in {time.time() - t0:.1f} s")
for k, v in pixel.items():
    assert v.shape == (x.shape[0], SIZE, SIZE), (k, v.shape)
    print(f"  {k:22s} map {tuple(v.shape)}")

# %% [markdown]
# ## Completeness of Integrated Gradients
#
# IG's attributions sum to the change of the score between the baseline and
# the input: sum_i phi_i = S(x) - S(x'). With `return_delta=True` the library
# returns the gap per sample (Captum's convergence delta). The default
# Gauss-Legendre rule makes the gap small with few steps.

# %%
phi, delta = attr.integrated_gradients(f, x, CONCEPT, steps=IG_STEPS, return_delta=True)
s_x = f(x)[0][:, CONCEPT]
s_0 = f(jnp.zeros_like(x))[0][:, CONCEPT]
total = phi.reshape(len(x), -1).sum(1)
for i in range(len(x)):
    print(
        f"  image {i}: sum phi = {float(total[i]):+.4f}, "
        f"S(x) - S(0) = {float(s_x[i] - s_0[i]):+.4f}, delta = {float(delta[i]):+.1e}"
    )
np.testing.assert_allclose(total - (s_x - s_0), delta, atol=1e-3)
scale = float(jnp.max(jnp.abs(s_x - s_0)))
assert float(jnp.max(jnp.abs(delta))) < 0.05 * scale + 1e-3

# %% [markdown]
# ## The maps
#
# Each row is one image; the last column is the planted building mask.

# %%
names = list(pixel)
fig, axes = plt.subplots(
    len(x), len(names) + 2, figsize=(2 * (len(names) + 2), 2 * len(x))
)
for i in range(len(x)):
    axes[i, 0].imshow((np.asarray(x[i]) + 1) / 2)
    for j, k in enumerate(names):
        m = np.asarray(pixel[k][i])
        lim = np.abs(m).max() + 1e-12
        axes[i, j + 1].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
    axes[i, -1].imshow(masks[i], cmap="gray")
for j, title in enumerate(["image", *names, "building mask"]):
    axes[0, j].set_title(title, fontsize=8)
for a in axes.ravel():
    a.set_xticks([])
    a.set_yticks([])
fig.suptitle("Attributions of the 'building' logit (red positive, blue negative)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Faithfulness and localisation
#
# A deletion curve removes pixels (sets them to the zero baseline) in order of
# decreasing attribution and tracks the target logit; a faithful map makes it
# fall fast, so a lower area under the curve is better. A random map is the
# reference. Relevance mass is the share of positive attribution inside the
# planted object's mask.

# %%
steps = 8 if TINY else 32
rand = jnp.asarray(np.random.default_rng(2).normal(size=(len(x), SIZE, SIZE)))
curves = {
    k: em.deletion_curve(f, x, v, CONCEPT, steps=steps, output="logit")
    for k, v in {**pixel, "random": rand}.items()
}
auc = {k: float(em.curve_auc(c).mean()) for k, c in curves.items()}
mass = {k: float(jnp.nanmean(em.relevance_mass(v, masks))) for k, v in pixel.items()}
print(f"  object share of the pixels: {masks.mean():.3f}")
for k in curves:
    extra_txt = f", relevance mass {mass[k]:.3f}" if k in mass else ""
    print(f"  {k:22s} deletion AUC {auc[k]:+.3f}{extra_txt}")

fig, ax = plt.subplots(figsize=(6, 4))
grid = np.linspace(0, 1, steps + 1)
for k, c in curves.items():
    ax.plot(grid, np.asarray(c).mean(0), label=k, ls="--" if k == "random" else "-")
ax.set_xlabel("fraction of pixels deleted")
ax.set_ylabel("'building' logit (mean over images)")
ax.set_title("Deletion curves")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Rank agreement between two methods: Kendall tau-b and Spearman rho of the
# |attribution| ranks (scipy's tie handling), and the share of common pixels
# among the top 10%.

# %%
a, b = pixel["Integrated Gradients"], pixel["gradient x input"]
k10 = SIZE * SIZE // 10
print("IG vs gradient x input:")
print("  Kendall tau-b ", np.round(np.asarray(em.kendall_tau(a, b)), 3))
print("  Spearman rho  ", np.round(np.asarray(em.spearman_rho(a, b)), 3))
print("  top-10% share ", np.round(np.asarray(em.top_k_intersection(a, b, k10)), 3))

# %% [markdown]
# ## KernelSHAP against exact Shapley values
#
# On a tabular model with d features, the interventional Shapley value of
# feature i averages v(S + i) - v(S) over coalitions S with the weights
# |S|! (d - |S| - 1)! / d!, where v(S) = E_b f(x_S, b_rest) over background
# rows b. With d = 6 we can enumerate all 64 coalitions in NumPy.
# `kernel_shap` with `nsamples=None` uses all 2^d - 2 coalitions and is exact;
# with fewer it samples paired coalitions (shap's allocation).

# %%
D = 6


w_rng = np.random.default_rng(3)
W1, W2 = w_rng.normal(size=(D, 16)) / np.sqrt(D), w_rng.normal(size=(16, 2)) / 4


def g(z):
    """A two-class MLP on D features: (rows, D) -> (rows, 2) logits."""
    return jnp.tanh(z @ W1.astype(np.float32)) @ W2.astype(np.float32)


tab_rng = np.random.default_rng(4)
xs = tab_rng.normal(size=(3, D)).astype(np.float32)
background = tab_rng.normal(size=(20, D)).astype(np.float32)


def exact_shapley(xi, cls):
    """All 2^D coalitions in one model call, then the Shapley sum in NumPy."""
    coal = np.array(list(itertools.product([0, 1], repeat=D)), bool)  # (2^D, D)
    z = np.where(coal[:, None, :], xi, background[None])  # (2^D, m, D)
    out = np.asarray(g(jnp.asarray(z.reshape(-1, D))))[:, cls]
    v = dict(zip(map(tuple, coal.astype(int)), out.reshape(len(coal), -1).mean(1)))
    phi = np.zeros(D)
    for s_ in v:
        r = sum(s_)
        for i in range(D):
            if s_[i] == 0:
                w = math.factorial(r) * math.factorial(D - r - 1) / math.factorial(D)
                with_i = s_[:i] + (1,) + s_[i + 1 :]
                phi[i] += w * (v[with_i] - v[s_])
    return phi


exact = np.stack([exact_shapley(xi, 1) for xi in xs])
ks_exact = attr.kernel_shap(g, xs, background, 1, key=jax.random.key(5))
ks_sampled = attr.kernel_shap(g, xs, background, 1, key=jax.random.key(5), nsamples=24)
print("exact Shapley values:\n", np.round(exact, 4))
print("kernel_shap, all 62 coalitions:\n", np.round(np.asarray(ks_exact), 4))
print("kernel_shap, 24 sampled coalitions:\n", np.round(np.asarray(ks_sampled), 4))
np.testing.assert_allclose(ks_exact, exact, atol=1e-4)
# Efficiency: each row sums to f(x) - E f(background), sampled or not.
gap = np.asarray(g(jnp.asarray(xs)))[:, 1] - np.asarray(g(background))[:, 1].mean()
np.testing.assert_allclose(np.asarray(ks_sampled).sum(1), gap, atol=1e-4)
print("max |sampled - exact| =", float(np.abs(np.asarray(ks_sampled) - exact).max()))

# %% [markdown]
# ## Going further
#
# The study script runs these methods (plus Grad-CAM++, RISE, image LIME,
# tabular LIME and TreeSHAP) on a trained backbone and writes the tables and
# figures of the metrics above:
#
# ```
# python -m eval.explain --config configs/explain.py:tiny --workdir /tmp/explain
# ```
