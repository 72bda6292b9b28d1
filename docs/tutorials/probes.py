# %% [markdown]
# # Probes: Net2Vec and TCAV in bulk
#
# Two supervised concept probes of a trained CNN:
#
# * **Net2Vec** (Fong & Vedaldi, CVPR 2018, arXiv:1801.03454): a 1x1 convolution
#   with bias and a sigmoid that segments a concept from a layer's activations.
#   We fit every (concept, run) probe of a layer in one jitted call and score
#   them by set IoU on held-out images.
# * **TCAV** (Kim et al., ICML 2018, arXiv:1711.11279): a concept activation
#   vector (CAV) separates a concept's activations from random ones; the TCAV
#   score is the fraction of class examples whose class logit grows along the
#   CAV. Concept CAVs are fitted against several random sets and tested
#   against random-vs-random CAVs (two-sided t-test, Bonferroni).
#
# You will train a small CNN on SynthAerial (20 steps in tiny mode, the size
# this page was rendered at; 600 at the default size), extract layer
# activations, fit 8 concepts x 2 runs of Net2Vec per layer, and run TCAV for
# the "has boat" output. Tiny-mode numbers come from 32-pixel scenes and a
# barely trained network: they show the calls, not the method's quality.
# At the default size (64 px, 1200 scenes, 600 steps; one run, 2026-12-07)
# the held-out set IoUs at conv2 ranged from 0.077 (truck) to 0.632
# (tennis court), and the boat concept scored TCAV 0.99 for "has boat",
# significant after Bonferroni (p = 0.0013).

# %%
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxcxai.concepts.probes import (
    Net2VecConfig,
    evaluate_net2vec,
    fit_net2vec,
    flatten_acts,
    net2vec,
    pipeline,
    run_tcav,
)
from jaxcxai.data import synthaerial
from jaxcxai.models import SmallCNN
from jaxcxai.training import classify, create_train_state, make_train_step

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
SIZE = 32 if TINY else 64  # image side in pixels
NUM_TRAIN = 160 if TINY else 1200  # images for the backbone and the probes
NUM_TEST = 64 if TINY else 400  # held-out images for the probe KPIs
STEPS = 20 if TINY else 600  # backbone training steps
WIDTHS = (8, 16, 16) if TINY else (16, 32, 64)
OUT_DIR = tempfile.mkdtemp()
print(f"size {SIZE}, {NUM_TRAIN} train / {NUM_TEST} test images, {STEPS} steps")

# %% [markdown]
# ## Data and a backbone
#
# SynthAerial scenes have a scene class (13) and 8 object concepts with
# per-pixel masks. The backbone predicts the scene (softmax block) and the
# presence of each concept (a multi-label block), as `train.classifier` does.

# %%
CONCEPTS = synthaerial.CONCEPTS
NUM_SCENES = len(synthaerial.SCENES)
train = synthaerial.generate(NUM_TRAIN, size=SIZE, seed=0)
test = synthaerial.generate(NUM_TEST, size=SIZE, seed=1)
ids = list(range(1, len(CONCEPTS) + 1))  # class_mask value c = CONCEPTS[c - 1]
train_masks = pipeline.concept_masks(train["class_mask"], ids)  # (N, K, H, W)
test_masks = pipeline.concept_masks(test["class_mask"], ids)
print("train masks", train_masks.shape, "; images per concept:")
print(dict(zip(CONCEPTS, train["objects_present"].sum(0).tolist())))
assert train_masks.shape == (NUM_TRAIN, len(CONCEPTS), SIZE, SIZE)


def preprocess(images):
    return jnp.asarray(images, jnp.float32) / 255.0


model = SmallCNN(num_classes=NUM_SCENES + len(CONCEPTS), widths=WIDTHS)
state = create_train_state(
    model,
    optax.adam(3e-3),
    jax.random.key(0),
    jnp.zeros((1, SIZE, SIZE, 3)),
    train=False,
)
loss_fn = classify.classification_loss_fn(model.apply, preprocess, NUM_SCENES)
train_step = jax.jit(make_train_step(loss_fn), donate_argnums=0)
rng = np.random.default_rng(0)
t0 = time.perf_counter()
history = []
for step in range(STEPS):
    rows = rng.choice(NUM_TRAIN, 32, replace=False)
    batch = {
        "image": train["image"][rows],
        "label": train["scene"][rows],
        "multilabel": train["objects_present"][rows],
    }
    state, metrics = train_step(state, batch, jax.random.key(1))
    history.append(float(metrics["bce"]))
variables = {"params": state.params, "batch_stats": state.batch_stats}
print(f"trained in {time.perf_counter() - t0:.1f} s; presence BCE "
      f"{history[0]:.3f} -> {history[-1]:.3f}")  # fmt: skip

# %% [markdown]
# ## Activations
#
# The backbone returns its named intermediates next to the logits; we keep
# `conv2` (stride 4; the default size adds `conv3`, stride 8). Net2Vec takes activations at native
# resolution, (N, h, w, C), and upsamples the probe's *logits* to the label
# grid, which equals upsampling the activations first (bilinear is linear).

# %%
LAYERS = ("conv2",) if TINY else ("conv2", "conv3")


@jax.jit
def features(images):
    return model.apply(variables, preprocess(images), train=False, layers=LAYERS)


_, train_acts = features(train["image"])
logits, test_acts = features(test["image"])
train_acts = {k: np.asarray(v) for k, v in train_acts.items()}
test_acts = {k: np.asarray(v) for k, v in test_acts.items()}
scores = classify.classification_metrics(
    np.asarray(logits), test["scene"], NUM_SCENES, test["objects_present"]
)
print("held-out metrics:", {k: round(v, 3) for k, v in scores.items()})
for name in LAYERS:
    print(name, train_acts[name].shape)

# %% [markdown]
# ## Net2Vec: K concepts x R runs in one call per layer
#
# `fit_net2vec` trains all K x R probes of a layer in one jitted scan. The
# defaults follow hybrid_learning's Net2Vec config (SGD, lr 1e-4, balanced BCE
# with weight 0.95 on positives, 30 epochs); at this toy size we use AdamW
# with a larger step (lr 0.1). `evaluate_net2vec` streams the held-out
# KPIs: set IoU at 0.5, mean per-image IoU, an IoU-vs-threshold curve and ECE.

# %%
RUNS = 2
cfg = Net2VecConfig(optimizer="adamw", learning_rate=0.1, batch_size=32, epochs=30)
probes, kpis = {}, {}
t0 = time.perf_counter()
for name in LAYERS:
    probes[name], losses = fit_net2vec(
        train_acts[name], train_masks, jax.random.key(2), config=cfg, num_runs=RUNS
    )
    kpis[name] = evaluate_net2vec(probes[name], [(test_acts[name], test_masks)])
    c = train_acts[name].shape[-1]
    assert probes[name].w.shape == (len(CONCEPTS), RUNS, c)
    assert float(losses[-1]) < float(losses[0])
print(f"{len(LAYERS) * len(CONCEPTS) * RUNS} probes fitted and scored in "
      f"{time.perf_counter() - t0:.1f} s")  # fmt: skip

print(f"{'concept':>14} " + " ".join(f"{n:>12}" for n in LAYERS))
for k, concept in enumerate(CONCEPTS):
    row = [float(np.mean(kpis[n]["set_iou"][k])) for n in LAYERS]
    print(f"{concept:>14} " + " ".join(f"{v:12.3f}" for v in row))

# %% [markdown]
# The set IoU is Σ|M̂ ∩ L| / Σ|M̂ ∪ L| over all test images, with M̂ the
# probe's mask thresholded at 0.5. We check the streamed value against NumPy
# on the probe's logits (`net2vec.probe_logits`).

# %%
name = LAYERS[-1]
z = np.asarray(
    net2vec.probe_logits(probes[name], jnp.asarray(test_acts[name]), (SIZE, SIZE))
)  # (K, R, N, H, W)
pred = z > 0  # sigmoid > 0.5
truth = np.moveaxis(test_masks, 1, 0)[:, None] > 0
inter = np.sum(pred & truth, axis=(2, 3, 4))
union = np.sum(pred | truth, axis=(2, 3, 4))
iou_np = (inter + 1e-6) / (union + 1e-6)
np.testing.assert_allclose(kpis[name]["set_iou"], iou_np, atol=1e-4)
print("set IoU matches NumPy for", name)

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
x = np.arange(len(CONCEPTS))
width = 0.8 / len(LAYERS)
for i, n in enumerate(LAYERS):
    offset = width * (i - (len(LAYERS) - 1) / 2)
    ax0.bar(x + offset, np.mean(kpis[n]["set_iou"], 1), width, label=n)
ax0.set_xticks(x, CONCEPTS, rotation=45, ha="right")
ax0.set_ylabel("held-out set IoU (mean of runs)")
ax0.set_title("Net2Vec probes per concept and layer")
ax0.legend()
thresholds = np.linspace(0, 1, kpis[name]["iou_curve"].shape[-1])
for k, concept in enumerate(CONCEPTS):
    ax1.plot(thresholds, kpis[name]["iou_curve"][k, 0], label=concept)
ax1.set_xlabel("mask threshold")
ax1.set_ylabel("set IoU")
ax1.set_title(f"IoU vs threshold ({name}, run 0)")
ax1.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "net2vec.png"))
plt.show()

# %% [markdown]
# ## TCAV for the "has boat" output
#
# `pipeline.layer_head_fn` returns the network from a layer's activations to
# the logits; TCAV differentiates it with `jax.vjp`. `pipeline.sample_sets`
# draws concept images (where the concept is visible) and R random image sets.
# `run_tcav` fits K x R concept CAVs plus R - 1 random-vs-random CAVs
# (logistic by default; "hinge" is scikit-learn's `SGDClassifier` objective,
# TCAV's default; "mean_diff" is the closed-form FastCAV-style direction),
# scores all of them on the class examples in one backward pass and runs the
# t-tests.

# %%
layer = "conv2"
# Closed-form mean-difference CAVs in tiny mode (nothing to compile); the
# default size fits L2-regularized logistic regressions (L-BFGS, in bulk).
METHOD = "mean_diff" if TINY else "logistic"
present = train_masks.reshape(train_masks.shape[:2] + (-1,)).any(-1)
num_random = 6 if TINY else 10
sets = pipeline.sample_sets(present, 12 if TINY else 40, 24 if TINY else 80,
                            num_random, seed=0)  # fmt: skip
kept = [CONCEPTS[k] for k in sets["concepts"]]
concept_feats = flatten_acts(train_acts[layer][sets["concept_rows"]])
random_feats = flatten_acts(train_acts[layer][sets["random_rows"]])
target = NUM_SCENES + CONCEPTS.index("boat")  # the "has boat" logit
boats = test["objects_present"][:, CONCEPTS.index("boat")]
class_acts = test_acts[layer][boats]
head = pipeline.layer_head_fn(model, variables, layer, SIZE)
t0 = time.perf_counter()
res = run_tcav(head, class_acts, target, concept_feats, random_feats, method=METHOD)
print(f"TCAV ({METHOD} CAVs): {len(kept)} concepts x {num_random} random sets, "
      f"{len(class_acts)} boat images, {time.perf_counter() - t0:.1f} s")  # fmt: skip
print(f"random-vs-random scores: {np.round(np.asarray(res['random_scores']), 2)}")
print(f"{'concept':>14} {'TCAV':>6} {'std':>6} {'p (Bonf.)':>10} significant")
for k, concept in enumerate(kept):
    print(f"{concept:>14} {res['mean'][k]:6.2f} {res['std'][k]:6.2f} "
          f"{res['p_corrected'][k]:10.3g} {bool(res['significant'][k])}")  # fmt: skip
assert res["scores"].shape == (len(kept), num_random)
assert res["random_scores"].shape == (num_random - 1,)
assert np.all((res["scores"] >= 0) & (res["scores"] <= 1))

# %% [markdown]
# A TCAV score is the fraction of examples with a positive directional
# derivative, so we can recompute one by hand from the head's gradient.

# %%
g = jax.grad(lambda a: head(a)[:, target].sum())(jnp.asarray(class_acts))
by_hand = np.mean(
    np.asarray(g).reshape(len(class_acts), -1) @ np.asarray(res["cavs"].direction[0, 0])
    > 0
)
print(f"TCAV score of {kept[0]} vs random set 0: {float(res['scores'][0, 0]):.3f}, "
      f"by hand {by_hand:.3f}")  # fmt: skip
assert abs(by_hand - float(res["scores"][0, 0])) < 1e-6

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
scores_np = np.asarray(res["scores"])
ax.boxplot(scores_np.T, positions=np.arange(len(kept)))
ax.scatter(
    np.repeat(np.arange(len(kept)), num_random), scores_np.ravel(), s=10,
    label="concept vs one random set",
)  # fmt: skip
ax.axhline(float(res["random_mean"][0]), color="grey", ls="--",
           label="random-vs-random mean")  # fmt: skip
for k in np.flatnonzero(res["significant"]):
    ax.text(k, 1.02, "*", ha="center")
ax.set_xticks(np.arange(len(kept)), kept, rotation=45, ha="right")
ax.set_ylim(-0.05, 1.1)
ax.set_ylabel("TCAV score")
ax.set_title(f"TCAV for 'has boat' at {layer} (* significant)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The same study from the command line
#
# `train.probes` runs this on a backbone trained by `train.classifier`
# (feature cache, all layers, NetDissect thresholds, runs) and `eval.concepts`
# writes the report and figures:
#
# ```bash
# python -m train.probes --config configs/probes.py:tiny --workdir /tmp/probes \
#     --config.backbone=workdirs/small_cnn
# python -m eval.concepts --config configs/probes.py:tiny --workdir /tmp/probes \
#     --config.backbone=workdirs/small_cnn
# ```
