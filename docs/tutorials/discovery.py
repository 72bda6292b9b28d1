# %% [markdown]
# # Concept discovery
#
# Unsupervised concept discovery factorises a layer's activations into a
# dictionary of directions ("concepts") and per-position codes. This tutorial
# follows ICE (Zhang et al. 2021, arXiv 2006.15417): NMF of the spatial
# activations of a CNN, with presence maps per concept, and compares it with
# PCA and k-means on the same rows.
#
# You will:
#
# 1. train a small CNN on SynthAerial images;
# 2. factorise its `conv2` activations with NMF (ICE), PCA and k-means;
# 3. match the NMF components to the planted object masks (NetDissect-style
#    IoU) and to supervised concept directions (Hungarian matching on cosine);
# 4. show the top-activating crops of the best-localised concepts.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai.concepts import discovery as disc
from jaxcxai.data import synthaerial
from jaxcxai.models import SmallCNN, host_init
from jaxcxai.training import make_train_step, state_from_variables

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 32 if TINY else 64
N_TRAIN = 256 if TINY else 4096
STEPS = 60 if TINY else 1500
N_FACT = 128 if TINY else 1024  # images whose activations are factorised
K = 8 if TINY else 12  # dictionary size
WIDTHS = (8, 16, 32) if TINY else (32, 64, 128)
print(f"tiny={TINY} size={SIZE} steps={STEPS} images factorised={N_FACT} k={K}")

# %% [markdown]
# ## A small trained network
#
# `SmallCNN` with a multi-label head (one logit per planted object class),
# trained with a sigmoid loss on `objects_present`.

# %%
data = synthaerial.generate(N_TRAIN + N_FACT, size=SIZE, seed=0)
images = data["image"].astype(np.float32) / 127.5 - 1.0
labels = data["objects_present"].astype(np.float32)
CONCEPTS = synthaerial.CONCEPTS

model = SmallCNN(num_classes=len(CONCEPTS), widths=WIDTHS)
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

# %% [markdown]
# ## Activations
#
# `conv2` is a ReLU + max-pool output, so it is non-negative, as NMF needs.
# Every spatial position of every image is one row of the factorised matrix.

# %%
held = slice(N_TRAIN, N_TRAIN + N_FACT)
x = jnp.asarray(images[held])
_, acts = model.apply(variables, x, train=False, layers=["conv2"])
acts = acts["conv2"]
print("conv2 activations:", acts.shape, "rows:", int(np.prod(acts.shape[:3])))
assert float(acts.min()) >= 0.0

# %% [markdown]
# ## Three factorisations
#
# `fit_ice` runs NMF (multiplicative updates) and reshapes the codes into
# presence maps (N, h, w, k). `fit_pca` and `fit_kmeans` return the same
# `Factorization` (components (k, d), codes (rows, k), mean). `r2` is the
# share of the activation variance each dictionary reconstructs.

# %%
key = jax.random.key(1)
ice = disc.fit_ice(acts, K, key, iters=200)
pca = disc.fit_pca(acts, K)
km = disc.fit_kmeans(acts, K, key, iters=50)
scores = {
    "NMF (ICE)": disc.r2(acts, ice.factorization.codes, ice.concepts),
    "PCA": disc.r2(acts, pca.codes, pca.components, pca.mean),
    "k-means": disc.r2(acts, km.codes, km.components, km.mean),
}
for name, r in scores.items():
    print(f"  {name:10s} R^2 = {r:.3f}")
print("NMF code sparsity:", disc.sparsity(ice.factorization.codes, tol=1e-3))
assert ice.concepts.shape == (K, acts.shape[-1])
assert ice.presence.shape == acts.shape[:3] + (K,)
assert float(ice.concepts.min()) >= 0.0
# PCA is the best rank-k linear reconstruction of the centred rows.
assert scores["PCA"] >= scores["NMF (ICE)"] - 1e-3

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(np.asarray(ice.factorization.losses), label="NMF objective")
ax.set_xlabel("multiplicative-update iteration")
ax.set_ylabel("0.5 ||X - W H||^2")
ax.set_yscale("log")
ax.set_title("NMF convergence on conv2 activations")
ax.legend()
plt.show()

# %% [markdown]
# ## Matching components to planted concepts
#
# `localization_iou` thresholds each component's upsampled presence map and
# computes the IoU with each planted concept mask. NetDissect's threshold is
# the top 0.5% of values (the default); the small objects of 32 px images
# cover less than that, so we use `top_quantile="area"`, the concept's mask
# area. `quality.recovered_concepts` lists the concepts some
# component localises with IoU >= 0.1 here (the study uses 0.3).

# %%
cmask = data["class_mask"][held]
masks = np.stack([cmask == c + 1 for c in range(len(CONCEPTS))], axis=-1)
iou = disc.localization_iou(ice.presence, masks, top_quantile="area")
best = disc.best_concepts(iou, CONCEPTS)
for j, b in enumerate(best):
    print(f"  component {j}: best concept {b['concept']:13s} IoU {b['iou']:.3f}")
recovered = disc.quality.recovered_concepts(iou, CONCEPTS, threshold=0.1)
print("recovered (IoU >= 0.1):", recovered)
assert iou.shape == (K, len(CONCEPTS))

fig, ax = plt.subplots(figsize=(7, 4))
im = ax.imshow(iou, cmap="viridis")
ax.set_xticks(range(len(CONCEPTS)), CONCEPTS, rotation=45, ha="right")
ax.set_yticks(range(K), [f"comp {j}" for j in range(K)])
ax.set_xlabel("planted concept")
ax.set_ylabel("NMF component")
ax.set_title("Localisation IoU of NMF components")
fig.colorbar(im, ax=ax, label="IoU")
fig.tight_layout()
plt.show()

# %% [markdown]
# Supervised directions give a second view. Here the supervised vector of a
# concept is the mean activation of positions inside its masks minus the mean
# elsewhere (a difference-of-means CAV); `match_to_reference` pairs concepts
# and components one-to-one by cosine (Hungarian) and also gives each
# concept's best component.

# %%
rows = np.asarray(acts).reshape(-1, acts.shape[-1])
h = acts.shape[1]
small = masks.reshape(N_FACT, h, SIZE // h, h, SIZE // h, -1).mean(axis=(2, 4))
inside = small.reshape(-1, len(CONCEPTS)) > 0.25
present = [c for c in range(len(CONCEPTS)) if inside[:, c].sum() >= 5]
vectors = np.stack(
    [rows[inside[:, c]].mean(0) - rows[~inside[:, c]].mean(0) for c in present]
)
matched = disc.match_to_reference(ice.concepts, vectors, [CONCEPTS[c] for c in present])
for name, m in matched.items():
    print(
        f"  {name:13s} hungarian comp {m['hungarian']} (cos {m['hungarian_cos']:.2f}),"
        f" best comp {m['best']} (cos {m['best_cos']:.2f})"
    )

# %% [markdown]
# ## Reference crops
#
# `reference_samples` ranks the images by each concept's maximal presence and
# cuts a crop around the maximum. Below: the top crops of the three
# components with the highest localisation IoU, presence overlaid.

# %%
refs = disc.reference_samples(data["image"][held], ice.presence, n=5, crop=0.5)
top = np.argsort(-iou.max(axis=1))[:3]
fig, axes = plt.subplots(len(top), 5, figsize=(10, 2.2 * len(top)))
for r, j in enumerate(top):
    for c in range(5):
        a = axes[r, c]
        a.imshow(refs.crops[j, c])
        a.imshow(refs.maps[j, c], cmap="jet", alpha=0.4)
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"score {refs.scores[j, c]:.2f}", fontsize=8)
    axes[r, 0].set_ylabel(f"comp {j}\n({best[j]['concept']})", fontsize=8)
fig.suptitle("Top-activating crops of three NMF components (presence overlaid)")
fig.tight_layout()
plt.show()
assert refs.crops.shape[:2] == (K, 5)

# %% [markdown]
# ## Going further
#
# Seed stability (`disc.stability`), TopK sparse autoencoders (`fit_sae`),
# concept importance (`gradient_importance`, `concept_sobol`) and the full
# study over layers and seeds:
#
# ```
# python -m eval.discover --config configs/discover.py:tiny --workdir /tmp/discover
# ```
