# %% [markdown]
# # Adversarial attacks dissected in concept space
#
# Mikriukov, Schwalbe, Motzkus & Bade, "The Anatomy of Adversarial Attacks:
# Concept-based XAI Dissection" (xAI 2024, arXiv 2403.16782), look at what a
# targeted attack changes *inside* a network: the perturbation it leaves in a
# layer's activations, and a small set of global directions that the
# perturbations of many images share. jaxcxai's `adversarial` package is a
# reconstruction of that study (the paper's body and code were not available).
#
# In this tutorial you will:
#
# 1. train a small CNN on scikit-learn's bundled digits;
# 2. run a targeted PGD attack vmapped over images x target classes and read
#    the attack success rate (ASR) per target;
# 3. compute the latent perturbation Delta = A_l(x_adv) - A_l(x) at a layer;
# 4. decompose the perturbations with PCA and NMF into a few components;
# 5. remove components from the perturbation by activation patching and watch
#    the ASR fall (and add them alone to the clean activation).

# %%
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai import adversarial as adv
from jaxcxai.data import classic
from jaxcxai.models import SmallCNN, host_init
from jaxcxai.training import make_train_step, state_from_variables

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
TRAIN_STEPS = 100 if TINY else 800  # Adam steps of the CNN
SOURCES = (0, 1) if TINY else (0, 1, 7)  # attacked classes
TARGETS = (3, 8) if TINY else (3, 5, 8)  # target classes
PER_CLASS = 8 if TINY else 24  # attacked images per source class
STEPS = 5 if TINY else 20  # PGD steps
EPS = 0.15  # l-inf budget on [0, 1] pixels
ALPHA = 0.05 if TINY else 0.02  # PGD step
LAYER = "conv2"  # the dissected layer
K = 4  # perturbation components
OUT = tempfile.mkdtemp()

# %% [markdown]
# ## A small CNN on the bundled digits
#
# The 8 x 8 digits are upsampled to 16 x 16 and fed to a `SmallCNN` as
# 2x - 1, so attacks work on pixels in [0, 1]. A few hundred steps of Adam
# reach a usable accuracy; the held-out images of the source classes are the
# ones we attack.

# %%
x_all, y_all = classic.load_sklearn_images("digits")
x_all = np.repeat(np.repeat(x_all, 2, axis=1), 2, axis=2)  # (N, 16, 16, 1)
rng = np.random.default_rng(0)
perm = rng.permutation(len(y_all))
held, train = perm[:400], perm[400:]

model = SmallCNN(num_classes=10, widths=(8, 16, 32))
variables = host_init(model, (1, 16, 16, 1), seed=0)


def loss_fn(params, batch_stats, batch, key):
    """The library's train-step contract: cross-entropy on pixels mapped to
    [-1, 1]."""
    (logits, _), upd = model.apply(
        {"params": params, "batch_stats": batch_stats}, 2 * batch["x"] - 1,
        train=True, mutable=["batch_stats"],
    )  # fmt: skip
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, (upd.get("batch_stats", {}), {})


train_step = jax.jit(make_train_step(loss_fn))
state = state_from_variables(model, optax.adam(3e-3), variables)
key = jax.random.key(0)  # folded with the step by the contract (unused here)
for idx in rng.integers(0, len(train), (TRAIN_STEPS, 64)):
    batch = {"x": x_all[train[idx]], "y": y_all[train[idx]]}
    state, metrics = train_step(state, batch, key)
variables, loss = state.variables(), metrics["loss"]


def apply_fn(x):
    """Pixels in [0, 1] -> (logits, {layer: activation}): the attack contract."""
    return model.apply(variables, 2 * x - 1, train=False)


clean_logits = np.asarray(jax.jit(apply_fn)(x_all[held])[0])
accuracy = float((clean_logits.argmax(1) == y_all[held]).mean())
print(f"final loss {float(loss):.3f}, held-out accuracy {accuracy:.3f}")
assert accuracy > 0.5

# %% [markdown]
# ## Targeted PGD over images x targets
#
# `over_targets` vmaps an attack over target classes; the attack itself is
# written for one image and vmapped over the batch. PGD starts at a random
# point of the eps-ball and takes `STEPS` signed-gradient steps on
# -CE(logits, target), each projected back onto the ball and into [0, 1].
# The result has leading (T, B) axes.

# %%
ok = held[clean_logits.argmax(1) == y_all[held]]  # correctly classified
rows = np.concatenate([ok[y_all[ok] == c][:PER_CLASS] for c in SOURCES])
x = x_all[rows]
res = adv.over_targets(
    "pgd", apply_fn, x, np.asarray(TARGETS), jax.random.key(1),
    eps=EPS, alpha=ALPHA, steps=STEPS, lo=0.0, hi=1.0,
)  # fmt: skip
assert res.x_adv.shape == (len(TARGETS),) + x.shape
assert float(res.linf.max()) <= EPS + 1e-6
asr = np.asarray(res.success).mean(1)
for t, a in zip(TARGETS, asr):
    print(f"target {t}: ASR {a:.2f}")
print(f"overall ASR {float(np.asarray(res.success).mean()):.2f} "
      f"({len(x)} images x {len(TARGETS)} targets)")  # fmt: skip

# %% [markdown]
# ## Latent perturbations at a layer
#
# For the successful (image, target) pairs, `latent_perturbation` returns
# Delta = A_l(x_adv) - A_l(x) as a spatial map; `gap` averages it to one
# vector per pair. Activation patching (`patched_logits`) runs the network
# with a delta added at the layer: patching x_adv with -Delta gives back the
# clean logits on this single-path network.

# %%
t_idx, b_idx = np.nonzero(np.asarray(res.success))
x_ok = x[b_idx]
x_adv_ok = np.asarray(res.x_adv)[t_idx, b_idx]
target_ok = np.asarray(TARGETS)[t_idx]
delta = adv.latent_perturbation(apply_fn, x_ok, x_adv_ok, [LAYER])[LAYER]
vec = np.asarray(adv.gap(delta))
print(f"{len(x_ok)} successful pairs; Delta at {LAYER}: {delta.shape}, "
      f"GAP vectors {vec.shape}")  # fmt: skip

restored = adv.patched_logits(model, variables, 2 * x_adv_ok - 1, LAYER, -delta)
clean = apply_fn(x_ok)[0]
np.testing.assert_allclose(restored, clean, atol=1e-3 * float(jnp.abs(clean).max()))
print("x_adv patched with -Delta gives the clean logits")

# %% [markdown]
# ## Global components of the perturbations
#
# `fit_components` stacks the GAP perturbations of all successful pairs into
# D (N, C), as the study does, and finds `K` global directions: uncentred PCA
# (the mean direction is part of what the attack adds), or NMF of the
# positive and negative parts [max(D, 0) | max(-D, 0)], each component
# u = h+ - h-. The printed ratio is the share of ||D||^2 along each unit
# direction; NMF directions are not orthogonal, so theirs can sum past 1.

# %%
pca = adv.fit_components(vec, K, "pca")
nmf = adv.fit_components(vec, K, "nmf_pm", jax.random.key(2))
for c in (pca, nmf):
    ratios = ", ".join(f"{r:.3f}" for r in np.asarray(c.explained_variance_ratio))
    print(f"{c.method:>6}: explained ratio per component {ratios}")
assert pca.vectors.shape == (K, vec.shape[1])
np.testing.assert_allclose(np.linalg.norm(pca.vectors, axis=1), 1.0, atol=1e-5)
# Uncentred PCA agrees with NumPy's SVD: ratio_j = s_j^2 / sum(s^2).
s = np.linalg.svd(vec.astype(np.float64), compute_uv=False)
np.testing.assert_allclose(
    np.asarray(pca.explained_variance_ratio), s[:K] ** 2 / (s**2).sum(), rtol=1e-3
)

# %% [markdown]
# ## Component ablation
#
# `ablation_curve` removes the first m components (by explained variance)
# from Delta at the layer, A_l(x_adv) - P_m Delta, projecting every pixel's
# perturbation, and runs the rest of the network: m = 0 is the adversarial
# forward pass. `add_only_curve` adds only
# P_m Delta to the clean activation. Both take model inputs (here 2x - 1).

# %%
curves = {}
for c in (pca, nmf):
    args = (model, variables, 2 * x_adv_ok - 1, 2 * x_ok - 1, LAYER, delta, c)
    curves[c.method] = (
        adv.ablation_curve(*args, target_ok),
        adv.add_only_curve(*args, target_ok),
    )
    removed, added = curves[c.method]
    print(f"{c.method:>6}: ASR removing 0..{K} components "
          f"{np.round(removed['success'], 2).tolist()}, adding only "
          f"{np.round(added['success'], 2).tolist()}")  # fmt: skip
    assert removed["success"][0] == 1.0  # m = 0: the successful adversarial pass
    assert added["success"][0] == 0.0  # m = 0: the clean, correctly classified pass
    # F2 in miniature: K of the C directions carry most of the attack
    # (tiny: ASR 0.0 with all K removed; default: 0.02 PCA, 0.04 NMF).
    assert removed["success"][-1] < 0.5

# %% [markdown]
# A figure: the attacked images and their perturbations, and the ASR as
# components are removed or added alone.

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
i = 0
axes[0].imshow(x_ok[i, ..., 0], cmap="gray")
axes[0].set_title(f"clean ({y_all[rows][b_idx[i]]})")
axes[1].imshow(x_adv_ok[i, ..., 0], cmap="gray")
axes[1].set_title(f"adversarial (target {target_ok[i]})")
im = axes[2].imshow(x_adv_ok[i, ..., 0] - x_ok[i, ..., 0], cmap="coolwarm",
                    vmin=-EPS, vmax=EPS)  # fmt: skip
axes[2].set_title("x_adv - x")
fig.colorbar(im, ax=axes[2])
for ax in axes[:3]:
    ax.set_xticks([])
    ax.set_yticks([])
m = np.arange(K + 1)
for method, (removed, added) in curves.items():
    axes[3].plot(m, removed["success"], "o-", label=f"{method}: removed")
    axes[3].plot(m, added["success"], "s--", label=f"{method}: added alone")
axes[3].set_xlabel("components m")
axes[3].set_ylabel("attack success rate")
axes[3].set_title(f"Ablation at {LAYER}")
axes[3].legend(fontsize=7)
plt.tight_layout()
plt.savefig(os.path.join(OUT, "ablation.png"))
plt.show()

# %% [markdown]
# Removing the first few of the 16 channel directions at conv2 nearly cancels
# the attack, and adding them alone to the clean activation makes most of the
# attacks succeed: a small global set of components carries the attack (F2).
#
# The study (`eval.adversarial`) runs this on the SynthAerial backbone, the
# digits CNN and (variant `full`) the packaged ImageNet networks, with
# several attacks and layers, and adds the target specificity of the
# components (F3) and the concept-composition change (F1):
#
# ```
# python -m eval.adversarial --config configs/adversarial.py \
#     --workdir workdirs/adversarial --config.backbone=workdirs/small_cnn
# ```
