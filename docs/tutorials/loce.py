# %% [markdown]
# # LoCE: local concept embeddings and their distributions
#
# Local Concept Embeddings (LoCE; Mikriukov, Schwalbe, Bade; IJCV 2025,
# arXiv:2311.14435 v3, whose v1 is GCPV) describe **one** concept segment of
# **one** image by a vector v in R^C: a bias-free 1x1 convolution whose
# projection sigmoid(v . a) reconstructs the segment's mask from a layer's
# activations a. Many LoCEs together show how a network's latent space
# organizes a concept: clusters, sub-concepts, overlaps between concepts.
#
# You will train a small CNN on SynthAerial, fit one LoCE per object
# instance (all instances in one vmapped call per chunk), and run the
# distribution analyses: own-projection IoU, pairwise separation and overlap,
# retrieval precision@k, hierarchical clustering purity and per-concept
# GMMs selected by BIC. SynthAerial plants a confusable pair (a truck is a car
# of twice the length) and two sub-concepts per concept.
#
# This page was rendered in tiny mode (32 px, an untrained network): it shows
# the calls, not the method's quality. At the default size (64 px, 600
# scenes, 600 training steps, 1100 LoCEs; one run, 2026-12-07) precision@1
# was 0.823 (chance 0.124), adaptive HAC purity 0.747 with 24 clusters, and
# mean own-projection IoUs ranged from 0.069 (tree) to 0.319 (tennis court).

# %%
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai.concepts.loce import (
    LoceConfig,
    analysis,
    clustering,
    pipeline,
    projection,
)
from jaxcxai.data import synthaerial
from jaxcxai.models import SmallCNN
from jaxcxai.training import classify, create_train_state, make_train_step

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 32 if TINY else 64  # image side in pixels
NUM_IMAGES = 64 if TINY else 600
MAX_PER_CONCEPT = 40 if TINY else 150  # seeded subset of instances per concept
# Tiny mode keeps the random initial weights (no training step to compile).
STEPS = 0 if TINY else 600  # backbone training steps
WIDTHS = (8, 16, 16) if TINY else (16, 32, 64)
EMBED = "pca" if TINY else "umap"  # 2-D embedding for the GMMs
OUT_DIR = tempfile.mkdtemp()
print(f"size {SIZE}, {NUM_IMAGES} images, {STEPS} backbone steps")

# %% [markdown]
# ## A backbone
#
# The same set-up as `train.classifier`: scene class (softmax) plus concept
# presence (multi-label), trained with the public training API. Tiny mode
# (the size this page was rendered at) skips the training and keeps the
# random initial weights: random convolutional features still separate some
# concepts, but the numbers below are those of an untrained network.

# %%
CONCEPTS = synthaerial.CONCEPTS
NUM_SCENES = len(synthaerial.SCENES)
data = synthaerial.generate(NUM_IMAGES, size=SIZE, seed=0)


def preprocess(images):
    return jnp.asarray(images, jnp.float32) / 255.0


model = SmallCNN(num_classes=NUM_SCENES + len(CONCEPTS), widths=WIDTHS)
state = create_train_state(
    model, optax.adam(3e-3), jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)),
    train=False,
)  # fmt: skip
loss_fn = classify.classification_loss_fn(model.apply, preprocess, NUM_SCENES)
train_step = jax.jit(make_train_step(loss_fn), donate_argnums=0)
rng = np.random.default_rng(0)
t0 = time.perf_counter()
metrics = None
for step in range(STEPS):
    rows = rng.choice(NUM_IMAGES, 32, replace=False)
    batch = {
        "image": data["image"][rows],
        "label": data["scene"][rows],
        "multilabel": data["objects_present"][rows],
    }
    state, metrics = train_step(state, batch, jax.random.key(1))
if metrics is not None:
    print(f"trained in {time.perf_counter() - t0:.1f} s, last batch: "
          f"scene accuracy {float(metrics['accuracy']):.2f}, "
          f"presence BCE {float(metrics['bce']):.3f}")  # fmt: skip
variables = {"params": state.params, "batch_stats": state.batch_stats}
LAYER = "conv2"
acts = jax.jit(
    lambda im: model.apply(variables, preprocess(im), train=False, layers=(LAYER,))[1]
)(data["image"])
acts = {LAYER: np.asarray(acts[LAYER])}  # (N, h, w, C) at native resolution
print(LAYER, acts[LAYER].shape)

# %% [markdown]
# ## One LoCE per object instance
#
# `pipeline.select_instances` lists the objects (with their planted
# sub-concept and background); the target of an instance is its own mask.
# `pipeline.fit_instances` fits them chunk by chunk into a resumable store on
# disk: per chunk, one jitted, vmapped `lax.scan` of 50 AdamW steps
# (lr 0.1, weight decay 0.01, zero init: the reference's `LoceConfig()`
# defaults) with the Net2Vec linear objective. The projection is computed at
# the native activation resolution and its logits upsampled to the target
# grid, which equals upsampling the activations first.

# %%
table = pipeline.select_instances(
    data, min_area=2 if TINY else 4, max_per_concept=MAX_PER_CONCEPT
)
labels = np.array([CONCEPTS[c - 1] for c in table["concept"]])
names, counts = np.unique(labels, return_counts=True)
print(f"{len(labels)} instances:", dict(zip(names.tolist(), counts.tolist())))
t0 = time.perf_counter()
res = pipeline.fit_instances(
    acts, data["instance_mask"], table, os.path.join(OUT_DIR, "store"),
    config=LoceConfig(), progress=False,
)  # fmt: skip
loces = np.asarray(res.layers[LAYER]["loce"])
iou = np.asarray(res.layers[LAYER]["iou"])
print(f"{len(loces)} LoCEs of dimension {loces.shape[1]} in "
      f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
assert loces.shape == (len(labels), acts[LAYER].shape[-1])
assert np.all((iou >= 0) & (iou <= 1))

# Own-projection IoU per concept: objects cover few pixels of a small
# activation map, and the Net2Vec objective (alpha ~ 1 for small objects)
# rewards true positives, so projections over-segment and IoUs stay low.
print(f"{'concept':>14} {'n':>4} {'own IoU':>8} {'IoU = 0':>8}")
for c in CONCEPTS:
    m = labels == c
    if m.any():
        print(f"{c:>14} {m.sum():4d} {iou[m].mean():8.3f} {np.mean(iou[m] == 0):8.2f}")

# %% [markdown]
# The IoU of a LoCE's own projection only depends on the sign of v . a (no
# bias), so it is invariant to rescaling v by any positive factor. We check it
# on the first instance with the library's projection.

# %%
i = 0
a0 = jnp.asarray(np.moveaxis(acts[LAYER][table["row"][i]], -1, 0))  # (C, h, w)
mask0 = data["instance_mask"][table["row"][i]] == table["instance"][i]
for scale in (1.0, 7.0):
    z = np.asarray(projection.logits(scale * jnp.asarray(loces[i]), a0, (SIZE, SIZE)))
    pred = z > 0
    got = np.sum(pred & mask0) / max(np.sum(pred | mask0), 1)
    print(f"scale {scale}: IoU {got:.4f} (stored {iou[i]:.4f})")
    assert abs(got - iou[i]) < 1e-4

# %% [markdown]
# ## Separation, overlap and retrieval
#
# * Pairwise separation Sep(c, d) = min distance between the two sets over
#   the diameter of their union (0: they touch).
# * Overlap Ov(c <- d): the fraction of c's LoCEs whose nearest d-LoCE is
#   closer than their nearest c-LoCE.
# * The reference's "mAP@k" is the mean precision@k of cosine retrieval
#   (each LoCE queries all others), averaged per concept: not average
#   precision.

# %%
classes, sep = analysis.pairwise_separation(loces, labels)
_, ov = analysis.overlap_ratio(loces, labels)
classes, sep, ov = [str(c) for c in classes], np.asarray(sep), np.asarray(ov)
assert np.allclose(sep, sep.T) and np.allclose(np.diag(sep), 0)
ic, it = classes.index("car"), classes.index("truck")
print(f"Sep(car, truck) = {sep[ic, it]:.3f}; mean over other pairs "
      f"{sep[~np.eye(len(classes), dtype=bool)].mean():.3f}")  # fmt: skip
print(f"Ov(car <- truck) = {ov[ic, it]:.2f}, Ov(truck <- car) = {ov[it, ic]:.2f}")

ks = (1, 5, 10)
prec = analysis.mean_precision_at_k(loces, labels, ks=ks, metric="cosine")
inv = np.unique(labels, return_inverse=True)[1]
chance = np.mean([(np.sum(inv == c) - 1) / (len(inv) - 1) for c in np.unique(inv)])
print("mean precision@k:", {k: round(v, 3) for k, v in prec.items()},
      f"(chance {chance:.3f})")  # fmt: skip

# precision@1 by hand: the nearest other LoCE by cosine distance.
unit = loces / np.maximum(np.linalg.norm(loces, axis=1, keepdims=True), 1e-12)
d = 1 - unit @ unit.T
np.fill_diagonal(d, np.inf)
hit = labels[np.argmin(d, axis=1)] == labels
p1 = np.mean([hit[labels == c].mean() for c in np.unique(labels)])
print(f"precision@1 by hand {p1:.3f}")
assert abs(p1 - prec[1]) < 1e-6

# %% [markdown]
# ## Clustering purity and per-concept GMMs
#
# Hierarchical clustering (ward, euclidean) with the reference's adaptive
# cluster extraction (relaxed: purity >= 0.8 or at most 5 % of the LoCEs per
# cluster); purity = the majority share over all clusters. Per concept, a
# Gaussian mixture with k = 1..5 components (1..3 in tiny mode) is chosen
# by BIC in a 2-D embedding of the LoCEs (UMAP; PCA in tiny mode);
# components of weight <= 0.1 mark outliers.

# %%
z = clustering.hac(loces, "ward", "euclidean")
p_min, s_max = clustering.adaptive_settings(len(loces))
assign = clustering.extract_clusters(z, labels, "adaptive", p_min=p_min, s_max=s_max)
pur, n_clusters = clustering.purity(assign, labels)
print(f"adaptive HAC: purity {pur:.3f} with {n_clusters} clusters "
      f"(P_min {p_min}, S_max {s_max})")  # fmt: skip
assert 0 < pur <= 1 and 1 <= n_clusters <= len(loces)

emb = clustering.embed_2d(loces, EMBED, n_neighbors=max(s_max, 2))
gmms = clustering.category_gmms(emb, labels, k_max=3 if TINY else 5)
for c, g in gmms.items():
    subs = table["sub_concept"][g.members]
    print(f"{c:>14}: k = {g.gmm.n_components} by BIC, population "
          f"{np.round(g.population, 2)}, outliers {int(g.outlier.sum())}, "
          f"sub-concepts {np.bincount(subs, minlength=2).tolist()}")  # fmt: skip

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
for c in classes:
    m = labels == c
    ax0.scatter(emb[m, 0], emb[m, 1], s=10, label=f"{c} ({m.sum()})")
ax0.set_xlabel(f"{EMBED.upper()} 1")
ax0.set_ylabel(f"{EMBED.upper()} 2")
ax0.set_title(f"LoCEs of {LAYER}, one per object")
ax0.legend(fontsize=7, markerscale=1.5)
im = ax1.imshow(sep, cmap="viridis", vmin=0)
ax1.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
ax1.set_yticks(range(len(classes)), classes)
ax1.set_title("pairwise separation Sep(c, d)")
fig.colorbar(im, ax=ax1, label="Sep")
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "loce.png"))
plt.show()

# %% [markdown]
# ## The same study from the command line
#
# `train.loce` fits the LoCEs of a trained backbone's layers into a store and
# `eval.loce` runs every analysis, with the report and figures:
#
# ```bash
# python -m train.loce --config configs/loce.py:tiny --workdir /tmp/loce \
#     --config.backbone=workdirs/small_cnn
# python -m eval.loce --config configs/loce.py:tiny --workdir /tmp/loce \
#     --config.backbone=workdirs/small_cnn
# ```
