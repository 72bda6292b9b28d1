# %% [markdown]
# # Cross-modal hashing: DUCH and CHNR
#
# DUCH (Mikriukov et al., "Deep Unsupervised Contrastive Hashing for
# Large-Scale Cross-Modal Text-Image Retrieval in Remote Sensing",
# arXiv:2201.08125) learns binary codes for images and captions without labels:
# an NT-Xent contrastive loss between views, an adversarial term, a
# quantization term and a bit-balance term. CHNR (Mikriukov et al., "An
# Unsupervised Cross-Modal Hashing Method Robust to Noisy Training Image-Text
# Correspondences in Remote Sensing", arXiv:2202.13117) adds a noise detector
# that down-weights wrong image-caption pairs.
#
# In this tutorial you will:
#
# 1. build image and caption features with a planted class structure;
# 2. split and standardise them as the reference code does;
# 3. run DUCH training steps through the train-step contract;
# 4. turn features into binary codes;
# 5. compute mAP@K with the exact evaluator and check it against a brute-force
#    NumPy mAP;
# 6. check the exact top-k Hamming search against a NumPy sort;
# 7. plot precision-recall curves before and after training.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxcxai.hashing import data as hashing_data
from jaxcxai.hashing import duch, hamming_topk
from jaxcxai.metrics import retrieval

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"

NUM_IMAGES = 300 if TINY else 2000
NUM_CLASSES = 5 if TINY else 10
IMAGE_DIM, TEXT_DIM = (64, 48) if TINY else (512, 384)
BITS = 16 if TINY else 32
HIDDEN = 128 if TINY else 1024
EPOCHS = 10 if TINY else 40
BATCH = 50 if TINY else 100
# The class centres sit closer in the default size, so retrieval is not trivial.
CLASS_SCALE = 1.0 if TINY else 0.3
# Tiny mode asks XLA for a quick compile (results agree to float32 rounding).
JIT_OPTIONS = {"xla_backend_optimization_level": 0} if TINY else None
print(f"{NUM_IMAGES} images, {NUM_CLASSES} classes, {BITS}-bit codes")

# %% [markdown]
# ## 1. Features with planted classes
#
# The trainer works on precomputed features: an image vector per image and
# several caption vectors per image. `hashing.data.synthetic_features` plants
# one random centre per class and modality and adds Gaussian noise; the
# augmented views add a little more noise. On real data the same arrays come
# from `hashing.data.h5_features` (the DUCH HDF5 files) or
# `hashing.data.synthaerial_features` (MobileNetV2 and MiniLM features of
# SynthAerial). The labels are only used for evaluation.

# %%
features = hashing_data.synthetic_features(
    num_images=NUM_IMAGES,
    num_classes=NUM_CLASSES,
    image_dim=IMAGE_DIM,
    text_dim=TEXT_DIM,
    class_scale=CLASS_SCALE,
    seed=0,
)
for name, value in features.items():
    print(f"{name:20s} {value.shape}")
assert features["text_features"].shape == (NUM_IMAGES, 5, TEXT_DIM)

# %% [markdown]
# `prepare_data` makes the reference code's seeded 50/10/40 split into train,
# query and database parts, standardises each array and picks one caption per
# image.

# %%
data = hashing_data.prepare_data(**features, seed=42)
for part in ("train", "query", "db"):
    print(f"{part:5s} img {data[part]['img'].shape} txt {data[part]['txt'].shape}")
train = data["train"]
assert len(train["img"]) + len(data["query"]["img"]) + len(data["db"]["img"]) == (
    NUM_IMAGES
)

# %% [markdown]
# ## 2. DUCH training steps
#
# `DuchHyper` holds the hyperparameters. Its defaults are the reference
# code's (32 bits, 4096 hidden units, learning rate 1e-4), and its `quirk`
# fields reproduce the reference code's known issues (all on by default). We
# use smaller nets and a larger learning rate so that a few epochs suffice.
#
# The train-step contract: `make_train_step(hyper)` returns
# `train_step(state, batch, key) -> (state, metrics)`. A batch is a dict with
# `idx` (the rows' positions in the train part, int32), `img`, `img_aug` and
# `txt`; `txt_aug` too when the `txt2_is_txt1` quirk is off. The step writes
# the batch's codes into per-sample buffers at `idx`. `epoch_end` then sets
# the target codes B from the buffers and applies the learning-rate rule.

# %%
hyper = duch.DuchHyper(bits=BITS, hidden=HIDDEN, lr=1e-3)
init = jax.jit(
    duch.init_state, static_argnums=(1, 2, 3, 4), compiler_options=JIT_OPTIONS
)
state = init(jax.random.key(0), hyper, IMAGE_DIM, TEXT_DIM, len(train["img"]))
state0 = state  # untrained, for comparison
train_step = jax.jit(duch.make_train_step(hyper), compiler_options=JIT_OPTIONS)
epoch_end = jax.jit(duch.epoch_end, static_argnums=2)
key = jax.random.key(1)

history = []
for epoch in range(EPOCHS):
    sums = {}
    for pos in duch.epoch_batches(len(train["img"]), BATCH, 0, epoch):
        batch = {
            "idx": pos.astype(np.int32),
            "img": train["img"][pos],
            "img_aug": train["img_aug"][pos],
            "txt": train["txt"][pos],
        }
        state, metrics = train_step(state, batch, key)
        sums = {k: sums.get(k, 0.0) + float(v) for k, v in metrics.items()}
    state = epoch_end(state, epoch, hyper)
    history.append(sums)
print("steps:", int(state.step))
print("metrics of one step:", sorted(metrics))
for epoch in (0, EPOCHS - 1):
    terms = ", ".join(
        f"{k} {history[epoch][k]:.3f}" for k in ("ntxent", "adv", "quant", "bb")
    )
    print(f"epoch {epoch}: loss {history[epoch]['loss']:.2f} ({terms})")
assert int(state.step) == EPOCHS * -(-len(train["img"]) // BATCH)
assert history[-1]["ntxent"] < history[0]["ntxent"]

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, label in (
    ("ntxent", "NT-Xent, 3 pairs (summed, quirk ntx_sum)"),
    ("quant", "quantization (x beta)"),
    ("bb", "bit balance (x gamma)"),
    ("disc_loss", "discriminator"),
):
    ax.semilogy([h[name] for h in history], marker=".", label=label)
ax.set_xlabel("epoch")
ax.set_ylabel("epoch sum of the term (log scale)")
ax.set_title("DUCH training on planted-class features")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Binary codes
#
# `duch.encode` runs a hash net in evaluation mode (BatchNorm running
# statistics) and takes the sign: every code is in {-1, +1}.

# %%
codes = {}
for part in ("query", "db"):
    for modality in ("img", "txt"):
        codes[part, modality] = duch.encode(state, data[part][modality], modality)
print("query image codes:", codes["query", "img"].shape)
print("first query image code:", codes["query", "img"][0].astype(int))
assert set(np.unique(codes["query", "img"])) <= {-1.0, 1.0}
assert codes["db", "txt"].shape == (len(data["db"]["txt"]), BITS)

# %% [markdown]
# ## 4. mAP@K, checked against a brute-force NumPy mAP
#
# An item is relevant to a query when their labels share a class. The
# reference code's `calc_map_k` ranks the whole database by Hamming distance.
# With T = min(K, R) and R the number of relevant items, it averages m / p_m
# over the first T relevant items, where p_m is the rank of the m-th relevant
# item in the full list (not cut at K). A query with no relevant item counts
# as 0. Below is that definition written directly in NumPy.


# %%
def brute_force_map(q_codes, db_codes, q_labels, db_labels, k):
    """The reference mAP@K, one query at a time (ties ranked by index)."""
    bits = q_codes.shape[1]
    aps = []
    for q, lab in zip(q_codes, q_labels):
        dist = 0.5 * (bits - db_codes @ q)
        order = np.argsort(dist, kind="stable")
        rel = (db_labels[order] @ lab) > 0
        t = min(k, int(rel.sum()))
        if t == 0:
            aps.append(0.0)
            continue
        ranks = np.flatnonzero(rel)[:t] + 1  # p_1, ..., p_T
        aps.append(np.mean(np.arange(1, t + 1) / ranks))
    return float(np.mean(aps))


K = 20
q_labels, db_labels = data["query"]["labels"], data["db"]["labels"]
exact = retrieval.mean_average_precision(
    codes["query", "img"],
    codes["db", "txt"],
    q_labels,
    db_labels,
    K,
    ties="reference",
)
brute = brute_force_map(
    codes["query", "img"], codes["db", "txt"], q_labels, db_labels, K
)
print(f"I->T mAP@{K}: library {exact:.6f}, brute force {brute:.6f}")
assert abs(exact - brute) < 1e-9

# %% [markdown]
# `ties="reference"` ranks equal distances by database index, as the reference
# code does in practice. With b bits there are only b + 1 distinct distances,
# so many items tie and the index order matters. The library's default,
# `ties="expected"`, reports the mean over all orders of each tie group; it
# does not depend on how the database is ordered.
#
# `retrieval.cross_modal_metrics` computes all four directions (I->T, T->I,
# I->I, T->T), P@K, precision within a radius and the PR curve in one pass. We
# compare the trained codes with the codes of the untrained nets.


# %%
def all_metrics(s):
    c = {
        (p, m): duch.encode(s, data[p][m], m)
        for p in ("query", "db")
        for m in ("img", "txt")
    }
    return retrieval.cross_modal_metrics(
        c["query", "img"],
        c["query", "txt"],
        c["db", "img"],
        c["db", "txt"],
        q_labels,
        db_labels,
        map_ks=(K,),
    )


before, after = all_metrics(state0), all_metrics(state)
for direction in ("i2t", "t2i", "i2i", "t2t", "avg"):
    print(
        f"{direction}: mAP@{K} untrained {before[direction][f'map@{K}']:.3f}"
        f" -> trained {after[direction][f'map@{K}']:.3f}"
    )
assert after["avg"][f"map@{K}"] > before["avg"][f"map@{K}"]

# %% [markdown]
# ## 5. Exact top-k Hamming search
#
# `hamming_topk` returns the k nearest database codes of each query, with ties
# ordered by database index: the first k items of a stable sort. It scales to
# millions of codes (chunked, optionally sharded over devices). Here we check
# it against a full NumPy sort.

# %%
k_nn = 10
dist, idx = hamming_topk(codes["query", "img"], codes["db", "txt"], k_nn)
full = (BITS - codes["query", "img"] @ codes["db", "txt"].T) / 2
ref_idx = np.argsort(full, axis=1, kind="stable")[:, :k_nn]
print("nearest captions of query 0:", idx[0], "distances", dist[0])
assert np.array_equal(idx, ref_idx)
assert np.array_equal(dist, np.take_along_axis(full, ref_idx, axis=1))

# %% [markdown]
# ## 6. Precision-recall curves
#
# The PR curve sweeps the Hamming radius r = 0..b: precision and recall of
# the items within distance r, averaged over the queries. It depends only on
# how many items lie at each distance, so it is the same under every tie
# rule.

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for name, metrics, style in (("trained", after, "-"), ("untrained", before, ":")):
    for direction in ("i2t", "t2i"):
        ax.plot(
            metrics[direction]["pr_recall"],
            metrics[direction]["pr_precision"],
            style,
            marker=".",
            label=f"{direction} ({name})",
        )
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_title(f"Hamming-radius PR curves, {BITS}-bit DUCH codes")
ax.legend()
plt.show()

precision, recall = retrieval.pr_curve(
    codes["query", "img"], codes["db", "txt"], q_labels, db_labels
)
assert precision.shape == recall.shape == (BITS + 1,)
assert np.allclose(recall[-1], 1.0)  # at radius b every item is retrieved

# %% [markdown]
# ## CHNR and the command line
#
# CHNR trains in two phases with the same state: `chnr.make_meta_step` trains
# the noise detector on a clean subset, then `chnr.make_main_step` trains the
# hash nets on pairs with injected wrong captions, weighting each pair by the
# detector. `hashing.data.chnr_sets` builds the two sets.
#
# The scripts run the whole study, with checkpoints, logs and the codes file:
#
# ```
# python -m train.hashing --config configs/duch.py:tiny --workdir /tmp/duch
# python -m train.hashing --config configs/chnr.py:tiny --workdir /tmp/chnr
# python -m eval.retrieval --codes /tmp/duch/codes.npz --out /tmp/duch/eval
# ```
#
# `train.hashing` writes `metrics.jsonl`, `codes.npz` and `results.json`;
# `eval.retrieval` writes `retrieval_metrics.json`, `retrieval_metrics.md` and
# `pr_curve.png`.
