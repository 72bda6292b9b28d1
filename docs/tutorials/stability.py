# %% [markdown]
# # Stability and comparison of concepts
#
# Two questions about concept activation vectors (CAVs) across layers:
#
# - How stably is a concept retrieved in a layer when the CAV is refitted on
#   other samples? Mikriukov et al. 2023 (arXiv 2304.14864) combine the
#   separation and the consistency of repeated CAVs into one score S and
#   compare 1D (channel), 2D (spatial) and 3D (full) CAVs.
# - Which layers of two networks encode a concept alike? Mikriukov et al. 2023
#   (arXiv 2305.07663) compare the concept outputs of every layer pair.
#
# You will train two small CNNs on SynthAerial, measure the retrieval
# stability of a concept in each layer and view, and draw layer x layer
# concept similarity matrices between the two networks, next to linear CKA.
# The library's S and similarity measures are reconstructions (see the
# method page).

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai.concepts import comparison as cmp
from jaxcxai.concepts import stability as stab
from jaxcxai.concepts.probes import fit_cavs
from jaxcxai.data import synthaerial
from jaxcxai.models import SmallCNN, host_init
from jaxcxai.training import make_train_step, state_from_variables

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 32 if TINY else 64
N_TRAIN = 256 if TINY else 4096
STEPS = 40 if TINY else 1500
N_PROBE = 192 if TINY else 1536  # images for the CAVs (half held out)
RUNS = 5 if TINY else 20
SAMPLES = (30,) if TINY else (10, 50, 150)
WIDTHS = (8, 16, 32) if TINY else (32, 64, 128)
LAYERS = ("conv1", "conv2", "conv3")
# Layers of the stability sweep (one compiled CAV fit per layer, view and n).
STAB_LAYERS = ("conv3",) if TINY else LAYERS
print(f"tiny={TINY} size={SIZE} steps={STEPS} runs={RUNS} samples={SAMPLES}")

# %% [markdown]
# ## Two small networks
#
# Both are `SmallCNN`s with a multi-label head over the eight planted object
# classes; they differ in their initialisation and batch order.

# %%
data = synthaerial.generate(N_TRAIN + N_PROBE, size=SIZE, seed=0)
images = data["image"].astype(np.float32) / 127.5 - 1.0
labels = data["objects_present"].astype(np.float32)
CONCEPTS = synthaerial.CONCEPTS
model = SmallCNN(num_classes=len(CONCEPTS), widths=WIDTHS)
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


def train(seed):
    # NumPy initial weights: compiling `model.init` costs seconds on XLA:CPU.
    state = state_from_variables(
        model, opt, host_init(model, images[:2].shape, seed=seed)
    )
    key = jax.random.key(seed)  # folded with the step by the contract (unused)
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        idx = rng.integers(0, N_TRAIN, 32 if TINY else 64)
        state, metrics = train_step(state, {"x": images[idx], "y": labels[idx]}, key)
    return state.variables(), float(metrics["loss"])


t0 = time.time()
nets = {}
for name, seed in (("A", 0), ("B", 1)):
    nets[name], loss = train(seed)
    print(f"network {name}: final training loss {loss:.3f}")
print(f"trained in {time.time() - t0:.1f} s")

probe = slice(N_TRAIN, N_TRAIN + N_PROBE)
acts = {}
for name, variables in nets.items():
    _, a = model.apply(variables, jnp.asarray(images[probe]), layers=list(LAYERS))
    acts[name] = [a[layer] for layer in LAYERS]
    print(name, {layer: tuple(a[layer].shape) for layer in LAYERS})

# %% [markdown]
# ## Retrieval stability of 1D, 2D and 3D CAVs
#
# The concept is "the image contains a building"; the other probe images are
# the non-concept set. For each layer, view and sample count n,
# `stab.sweep` fits R CAVs on R random subsets of n concept and n non-concept
# images (one vmapped fit), then reports:
#
# - consistency: the mean pairwise cosine of the R CAVs;
# - separation: the mean held-out accuracy of the R classifiers;
# - S = separation x consistency.
#
# The views (`stab.represent`): "1d" averages over space (C features), "2d"
# over channels (H*W features), "3d" keeps everything (H*W*C features).

# %%
present = data["objects_present"][probe, CONCEPTS.index("building")]
half = N_PROBE // 2
fit_rows, held_rows = np.arange(half), np.arange(half, N_PROBE)
pos_fit, neg_fit = fit_rows[present[:half]], fit_rows[~present[:half]]
pos_held, neg_held = held_rows[present[half:]], held_rows[~present[half:]]
print(f"concept / non-concept images for fitting: {len(pos_fit)} / {len(neg_fit)}")
assert min(len(pos_fit), len(neg_fit)) >= max(SAMPLES)

rows = []
for layer, a in zip(LAYERS, acts["A"]):
    if layer not in STAB_LAYERS:
        continue
    a = np.asarray(a)
    res = stab.sweep(
        a[pos_fit], a[neg_fit], a[pos_held], a[neg_held], jax.random.key(2),
        samples=SAMPLES, runs=RUNS,
    )  # fmt: skip
    for row in stab.sweep_table(res):
        rows.append({"layer": layer, **row})
print(f"{'layer':6s} {'view':4s} {'n':>4s} {'S':>6s} {'sep':>6s} {'cons':>6s}")
for r in rows:
    print(
        f"{r['layer']:6s} {r['dim']:4s} {r['samples']:4d} {r['stability']:6.3f}"
        f" {r['separation']:6.3f} {r['consistency']:6.3f}"
    )
for r in rows:
    assert 0.0 <= r["separation"] <= 1.0 and -1.0 <= r["consistency"] <= 1.0
    assert abs(r["stability"] - r["separation"] * r["consistency"]) < 1e-5

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
n_max = max(SAMPLES)
for dim, marker in zip(stab.DIMS, "osd"):
    sel = [r for r in rows if r["dim"] == dim and r["samples"] == n_max]
    axes[0].plot(STAB_LAYERS, [r["stability"] for r in sel], marker=marker, label=dim)
    for layer, ls in zip(STAB_LAYERS, ("-", "--", ":")):
        cur = [r for r in rows if r["dim"] == dim and r["layer"] == layer]
        axes[1].plot(
            [r["samples"] for r in cur], [r["consistency"] for r in cur],
            marker=marker, ls=ls, label=f"{dim} {layer}",
        )  # fmt: skip
axes[0].set_xlabel("layer of network A")
axes[0].set_ylabel(f"retrieval stability S (n = {n_max})")
axes[0].set_title("S per layer and CAV view")
axes[0].legend(title="view")
axes[1].set_xlabel("samples per run n")
axes[1].set_ylabel("consistency (mean pairwise cosine)")
axes[1].set_title("Consistency vs samples per run")
axes[1].legend(fontsize=7, ncol=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Layer x layer concept similarity of two networks
#
# For each network, layer and concept we fit a CAV (`probes.fit_cavs`, on
# spatially averaged activations) and project held-out images onto it
# (`cmp.cav_layer_projections`, (L, K, N)). `cmp.layer_similarity` with the
# "pearson" measure correlates, per concept, the projections of layer i of A
# and layer j of B over the same images and averages over concepts.
# Linear CKA (`cmp.cka_matrix`) of the raw activations is the concept-free
# baseline.

# %%
has = data["objects_present"][probe]
kept = [c for c in range(len(CONCEPTS)) if has[:half, c].sum() >= 8]
names = [CONCEPTS[c] for c in kept]
n_c = min(int(has[:half, c].sum()) for c in kept)
rng = np.random.default_rng(3)
random_rows = rng.choice(half, size=min(64, half), replace=False)


def layer_cavs(layer_acts):
    feats = jnp.asarray(np.asarray(layer_acts)[:half].mean(axis=(1, 2)))
    concept = jnp.stack([feats[np.flatnonzero(has[:half, c])[:n_c]] for c in kept])
    return fit_cavs(concept, feats[random_rows][None])


proj = {
    name: cmp.cav_layer_projections(
        [layer_cavs(a) for a in acts[name]],
        [a[half:] for a in acts[name]],
        pool="mean",
    )  # fmt: skip
    for name in nets
}
print("projections:", {k: tuple(v.shape) for k, v in proj.items()})
sim_ab = cmp.layer_similarity(proj["A"], proj["B"], "pearson")
sim_aa = cmp.layer_similarity(proj["A"], proj["A"], "pearson")
cka_ab = cmp.cka_matrix([a[half:] for a in acts["A"]], [b[half:] for b in acts["B"]])
print("concepts:", names)
print("Pearson similarity A x B:\n", np.round(np.asarray(sim_ab.mean), 3))
print("linear CKA A x B:\n", np.round(np.asarray(cka_ab), 3))
match = cmp.best_match(sim_ab.mean)
print("best layer of B for each layer of A:", [LAYERS[j] for j in match.best])
print("mean distance from the relative-depth diagonal:", float(match.mean_distance))
assert sim_ab.mean.shape == (len(LAYERS), len(LAYERS))
assert sim_ab.per_concept.shape == (len(LAYERS), len(LAYERS), len(kept))
# A layer's projections correlate perfectly with themselves.
np.testing.assert_allclose(np.diag(np.asarray(sim_aa.mean)), 1.0, atol=1e-4)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (title, m) in zip(
    axes,
    (("concept similarity (Pearson)", sim_ab.mean), ("linear CKA", cka_ab)),
):
    im = ax.imshow(np.asarray(m), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(LAYERS)), LAYERS)
    ax.set_yticks(range(len(LAYERS)), LAYERS)
    ax.set_xlabel("layer of network B")
    ax.set_ylabel("layer of network A")
    ax.set_title(title)
    for i in range(len(LAYERS)):
        for j in range(len(LAYERS)):
            ax.text(j, i, f"{float(m[i, j]):.2f}", ha="center", va="center",
                    color="w", fontsize=8)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle("Network A vs network B, layer by layer")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Going further
#
# The studies run these steps on trained backbones (and, for the comparison,
# the packaged ImageNet networks) and write reports and figures:
#
# ```
# python -m eval.stability --config configs/stability.py:tiny --workdir /tmp/stab
# python -m eval.compare --config configs/compare.py:tiny --workdir /tmp/compare
# ```
