# %% [markdown]
# # Background bias of concept embeddings
#
# "On background bias of post-hoc concept embeddings in computer vision DNNs"
# (xAI 2025, arXiv 2504.08602) asks whether a concept vector fitted on
# natural images learns the concept or its usual background. The paper's
# remedy is to fit the vector on *views*: the concept's foreground pasted on random
# backgrounds, either one whole background per view (`full`) or a Voronoi
# mosaic of twelve (`voronoi`); `vanilla` is the image itself.
#
# In this tutorial you will:
#
# 1. cut boats out of SynthAerial scenes (boats sit on water with probability
#    0.9, a planted bias) and make full / Voronoi / vanilla views of them;
# 2. filter a background pool with an ImageNet classifier's top-5, as the
#    paper does, and score the filter against the scenes' truth;
# 3. fit multi-view LoCEs and their GloCE on activations of the packaged
#    ImageNet MobileNetV2, once per training randomisation;
# 4. measure the IoU of each GloCE on held-out boats pasted on each scene
#    group, road and water among them, and the embedding shift (cosine to
#    the vanilla GloCE).

# %%
import os
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxcxai.concepts import background as bg
from jaxcxai.data import synthaerial
from jaxcxai.models import pretrained
from jaxcxai.models.preprocess import preprocess

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 96 if TINY else 128  # image side (pixels)
N_TRAIN = 12 if TINY else 48  # training boats
N_TEST = 8 if TINY else 32  # held-out boats
VIEWS = 2 if TINY else 8  # views per training boat (the paper: 1, 4, 8, 32)
TEST_VIEWS = 4  # views per held-out boat and test group
PER_GROUP = 2 if TINY else 4  # training backgrounds per scene group
BATCH = 32  # images per backbone call (one compiled shape)
LAYER = "features.6"  # MobileNetV2 block, stride 8: (SIZE/8)^2 positions
OUT = tempfile.mkdtemp()

# %% [markdown]
# ## Boats and their planted background
#
# SynthAerial gives each object an instance mask. We take the largest boat of
# every harbor or river scene that has one; `obj_background` tells what lies
# under it.

# %%
scenes = synthaerial.generate(
    3 * (N_TRAIN + N_TEST), size=SIZE, seed=80_000, scenes=("harbor", "river")
)
boat = synthaerial.CONCEPTS.index("boat") + 1
rows, masks, under = [], [], []
for i in range(len(scenes["image"])):
    ids = np.flatnonzero(scenes["obj_class"][i] == boat)
    if len(ids) == 0:
        continue
    inst = [scenes["instance_mask"][i] == j + 1 for j in ids]
    best = int(np.argmax([m.sum() for m in inst]))
    rows.append(i)
    masks.append(inst[best])
    under.append(synthaerial.BACKGROUNDS[scenes["obj_background"][i, ids[best]]])
    if len(rows) == N_TRAIN + N_TEST:
        break
images = scenes["image"][rows]
masks = np.stack(masks)
under = np.asarray(under)
assert images.shape == (N_TRAIN + N_TEST, SIZE, SIZE, 3)
print(f"{len(images)} boats, mean mask {masks.sum((1, 2)).mean():.0f} px")
names, counts = np.unique(under, return_counts=True)
print("background under the boat:", dict(zip(names.tolist(), counts.tolist())))

# %% [markdown]
# ## A filtered background pool
#
# `synthaerial_scene_pool` draws whole SynthAerial scenes, objects included,
# for half of the backgrounds (as Places photos may show the concept) and
# records which objects each one truly shows. The paper rejects a background
# when an ImageNet classifier's top-5 classes contain one mapped from the
# concept; here the packaged MobileNetV2 plays that classifier, with the
# library's ImageNet table `filtering.IMAGENET_CONCEPTS`. The same jitted
# forward pass also returns the activations we fit concept vectors on.

# %%
model, variables = pretrained.load_pretrained("mobilenet_v2")


@jax.jit
def _forward(x):
    logits, acts = model.apply(
        variables, preprocess("mobilenet_v2", x), train=False, layers=(LAYER,)
    )
    return logits, acts[LAYER]


def forward(x):
    """(logits (M, 1000), acts (M, C, h, w)) in batches of BATCH."""
    x = np.asarray(x)
    outs = []
    for s in range(0, len(x), BATCH):
        chunk = x[s : s + BATCH]
        pad = np.concatenate([chunk, np.zeros_like(x[: BATCH - len(chunk)])])
        logits, acts = _forward(pad)
        outs.append((np.asarray(logits)[: len(chunk)], np.asarray(acts)[: len(chunk)]))
    logits = np.concatenate([o[0] for o in outs])
    acts = np.concatenate([o[1] for o in outs]).transpose(0, 3, 1, 2)
    return logits, acts


candidates = bg.synthaerial_scene_pool(
    2 * PER_GROUP, size=SIZE, seed=1, scene_fraction=0.5
)
keep = bg.filter_backgrounds(
    candidates.images,
    lambda x: forward(x)[0],
    bg.filtering.IMAGENET_CONCEPTS,
    "boat",
    k=5,
    batch_size=BATCH,
)
truth = candidates.objects[:, synthaerial.CONCEPTS.index("boat")]
score = bg.filtering.score_filter(~keep, truth)
print("filter vs truth:", score)
assert score["candidates"] == len(candidates.images)
pool, filled = bg.filtering.keep_per_group(candidates, keep, PER_GROUP)
print(
    f"training pool: {len(pool.images)} backgrounds in {len(pool.group_names)} groups"
)

# %% [markdown]
# On these small aerial images the ImageNet classifier rarely names a boat
# class: the filter misses most backgrounds that show one and may reject
# some that do not (recall and precision above).
# The study (`eval.background`) therefore filters with the trained backbone's
# own `has_boat` output by default (`pool.filter = "presence"`).
#
# ## Full, Voronoi and vanilla views
#
# `make_views` vmaps over images and views in one jitted call; view (i, j)
# depends only on its own key. Wherever the mask is on, a view keeps the
# image's pixels.

# %%
key = jax.random.key(0)
train, test = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_TEST)
views = {
    kind: np.asarray(
        bg.make_views(
            images[train],
            masks[train],
            pool.images,
            jax.random.fold_in(key, i),
            kind,
            VIEWS,
        )
    )
    for i, kind in enumerate(bg.KINDS)
}
for kind, v in views.items():
    assert v.shape == (N_TRAIN, VIEWS, SIZE, SIZE, 3)
    fg = np.broadcast_to(masks[train][:, None], v.shape[:-1])
    assert (v[fg] == np.broadcast_to(images[train][:, None], v.shape)[fg]).all()
assert (views["vanilla"] == images[train][:, None]).all()

fig, axes = plt.subplots(3, 4, figsize=(8, 6))
for r in range(3):
    axes[r, 0].imshow(masks[r], cmap="gray")
    for c, kind in enumerate(bg.KINDS):
        axes[r, c + 1].imshow(views[kind][r, 0])
    for ax in axes[r]:
        ax.set_xticks([])
        ax.set_yticks([])
for c, name in enumerate(("mask",) + bg.KINDS):
    axes[0, c].set_title(name)
fig.suptitle("Boats on randomised backgrounds (first view of three boats)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Multi-view LoCEs and their GloCE
#
# `fit_loces` fits one bias-free vector per boat from its views, with the
# view losses summed (30 AdamW steps, lr 0.1, zero init, targets on the
# 80 x 80 grid); `fit_gloces` also returns their plain mean per label, the
# GloCE. The vanilla views are the same image `VIEWS` times: AdamW is
# invariant to the loss scale (up to its eps), so this is the one-view fit
# with one compiled shape for all three randomisations.

# %%
targets = bg.grid_targets(
    np.broadcast_to(masks[train][:, None], (N_TRAIN, VIEWS) + masks.shape[1:])
)
gloces = {}
for kind in bg.KINDS:
    flat = views[kind].reshape((-1, SIZE, SIZE, 3))
    acts = forward(flat)[1]
    acts = acts.reshape((N_TRAIN, VIEWS) + acts.shape[1:])
    _, means, loces = bg.fit_gloces(acts, targets, np.zeros(N_TRAIN, np.int32))
    gloces[kind] = np.asarray(means[0])
    assert loces.shape == (N_TRAIN, acts.shape[2])
print(f"activations (N, V, C, h, w) = {acts.shape}, targets {targets.shape}")
vectors = np.stack([gloces[k] for k in bg.KINDS])

# %% [markdown]
# ## Test-time background bias
#
# The held-out boats are pasted (`full`) on backgrounds of each scene group
# of a test pool with another seed, `TEST_VIEWS` views per boat, plus the
# boats in their own scenes (`vanilla`). `view_ious` projects each GloCE on
# each view's activations, upsamples to 80 x 80 and scores
# `(|[sigmoid(u.a) > 0.5] & [t > 0]| + 1e-4) / (|[..] | [..]| + 1e-4)`.

# %%
# Tiny mode tests on water and road only; the default on all 8 groups.
test_groups = ("water", "road") if TINY else bg.SCENE_GROUPS
test_pool = bg.synthaerial_pool(4, size=SIZE, seed=2, groups=test_groups)
groups = ("vanilla",) + test_pool.group_names
ious = {}
for g, group in enumerate(groups):
    m = np.repeat(masks[test], TEST_VIEWS, axis=0)
    if group == "vanilla":  # repeated: every group has one shape, one compile
        v = np.repeat(images[test], TEST_VIEWS, axis=0)
    else:
        v = bg.make_views(
            images[test], masks[test], test_pool.select(group).images,
            jax.random.fold_in(key, 100 + g), "full", TEST_VIEWS,
        )  # fmt: skip
        v = np.asarray(v).reshape((-1, SIZE, SIZE, 3))
    ious[group] = np.asarray(bg.view_ious(vectors, forward(v)[1], m))
    assert ious[group].shape == (len(v), len(bg.KINDS))
    assert ((ious[group] >= 0) & (ious[group] <= 1)).all()

table = np.stack([ious[g].mean(0) for g in groups])  # (groups, kinds)
print("mean IoU    " + "  ".join(f"{k:>8}" for k in bg.KINDS))
for group, row in zip(groups, table):
    print(f"{group:>10}  " + "  ".join(f"{x:8.3f}" for x in row))
drop = table[groups.index("water")] - table[groups.index("road")]
print("water - road drop:", {k: round(float(d), 3) for k, d in zip(bg.KINDS, drop)})
# The planted bias: the vanilla GloCE loses more from water to road than the
# randomised ones (tiny: 0.27 vs 0.07 and 0.05; default: 0.27 vs -0.05, 0.06).
van = bg.KINDS.index("vanilla")
assert drop[van] > max(np.delete(drop, van)), drop

# %% [markdown]
# `group_stats` gives the per-group mean and sample standard deviation (ddof 1,
# as the reference's pandas pivot) in one jitted call; its means agree with
# the NumPy ones above.

# %%
kind = bg.KINDS.index("vanilla")
values = np.concatenate([ious[g][:, kind] for g in groups])
labels = np.concatenate([np.full(len(ious[g]), i) for i, g in enumerate(groups)])
stats = bg.group_stats(values, labels, len(groups))
np.testing.assert_allclose(stats["mean"], table[:, kind], rtol=1e-5, atol=1e-6)
print(
    "vanilla GloCE, std:", {g: round(float(s), 3) for g, s in zip(groups, stats["std"])}
)

x = np.arange(len(groups))
fig, ax = plt.subplots(figsize=(9, 3.5))
for k, name in enumerate(bg.KINDS):
    ax.bar(x + (k - 1) * 0.27, table[:, k], 0.27, label=f"trained on {name}")
ax.set_xticks(x, groups)
ax.set_xlabel("test background group")
ax.set_ylabel("mean IoU (80 x 80 grid)")
ax.set_title(f"Boat GloCE at {LAYER} by training randomisation")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Embedding shift
#
# How far does randomisation move the concept vector? `cosine_matrix` gives
# the cosine between every pair, with the paper's rule for vectors that are
# about zero (1 when both are, 0 when one is), which the reference code
# lacks.

# %%
cos = np.asarray(bg.cosine_matrix(vectors, vectors))
print("cosine     " + "  ".join(f"{k:>8}" for k in bg.KINDS))
for name, row in zip(bg.KINDS, cos):
    print(f"{name:>8}  " + "  ".join(f"{c:8.3f}" for c in row))
np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-5)
zero = np.zeros(4)
assert float(bg.embedding_cosine(zero, zero)) == 1.0
assert float(bg.embedding_cosine(zero, np.ones(4))) == 0.0
np.save(os.path.join(OUT, "gloces.npy"), vectors)

# %% [markdown]
# At both sizes the vanilla GloCE scores far better on water than on road,
# and both randomisations shrink that drop. The packaged ImageNet network has
# never seen SynthAerial, so the vectors are weak (IoUs well below 0.5) and
# the single numbers move with the sizes above; with a few held-out boats,
# differences of a few hundredths are noise. The study runs it on a backbone trained on SynthAerial,
# with the filter on its `has_<concept>` output, two layers, LoCE and
# Net2Vec, and writes an IoU table per test group, the boat-on-road check and
# the embedding shift:
#
# ```
# python -m train.classifier --config configs/classifier.py:small_cnn \
#     --workdir workdirs/small_cnn
# python -m eval.background --config configs/background.py \
#     --workdir workdirs/background --config.backbone=workdirs/small_cnn
# ```
