"""`triplet_agreement`: tree-level triplet agreement, 1000 ImageNet classes
against WordNet, plus UAES inference throughput.

Data: the ontology is the WordNet hypernym tree over the 1000 ImageNet-1k
classes (`hierarchy.wordnet.wordnet_imagenet`, Debian WordNet 3.0). The tree
is the agglomerative tree (average linkage, cosine) of the packaged
MobileNetV2's classifier weight vectors, one (1280,) row per class
(`models.load_pretrained("mobilenet_v2")`); without the weight package,
seeded random centroids (noted in `params`).

Ours: `consistency.triplet_agreement` from the two parent arrays (LCA-depth
matrices by block writes, then per-row 2-D dominance counts), exact over all
C(1000, 3) triplets; best of several calls.
Baseline: brute-force enumeration of every triplet in NumPy, vectorised per
first class (a Python loop over i, all pairs j < k above it at once):
gather the three pair LCA depths from both LCA-depth matrices, find each
side's strictly deepest pair, count. Run on a random subset of 200 classes,
its time extrapolated per triplet to n = 1000, so `speedup` is the
per-triplet ratio (target >= 50x). The full run also times the baseline on
all 1000 classes once, as a check on the extrapolation.

Agreement: ours on the 200-class subset gives the same (agreeing, resolved)
triplet counts, hence the identical T, as the enumeration (and the same on
all 1000 classes in the full run).

Extra: UAES inference throughput (samples/s after compilation) on the
1000-class tree: N noisy class embeddings (class weight vector + Gaussian
noise, normalised), greedy descent with h* calibrated for 80 % coverage.
"""

import time
from math import comb

import numpy as np

from eval.benches.timing import best_time
from jaxcxai.hierarchy import consistency, trees, uaes, wordnet
from jaxcxai.hierarchy.tree import build

N_SUB = 200
TEMPERATURE = 0.01


def _class_vectors():
    """(1000, 1280) MobileNetV2 classifier rows, or random ones."""
    from jaxcxai.models.pretrained import MissingWeightsError, load_pretrained

    try:
        _, variables = load_pretrained("mobilenet_v2")
    except MissingWeightsError:
        rng = np.random.default_rng(0)
        return rng.normal(size=(1000, 1280)).astype(np.float32), "random centroids"
    w = np.asarray(variables["params"]["classifier.1"]["kernel"]).T
    return w.astype(np.float32), "MobileNetV2 classifier weights"


def _closest(x, y, z):
    """Strictly deepest pair of each triplet: 0 (i, j), 1 (i, k), 2 (j, k),
    or -1 where no pair is strictly deepest."""
    m = np.maximum(np.maximum(x, y), z)
    ties = (x == m).astype(np.int8) + (y == m) + (z == m)
    pair = np.where(x == m, 0, np.where(y == m, 1, 2))
    return np.where(ties == 1, pair, -1)


def enumerate_counts(tree_parent, tree_leaves, onto_parent, onto_leaves):
    """Baseline: (agreeing, resolved) over every enumerated triplet."""
    lt = trees.lca_depth(tree_parent, tree_leaves)
    lo = trees.lca_depth(onto_parent, onto_leaves)
    n = lt.shape[0]
    agree = resolved = 0
    for i in range(n - 2):
        j, k = np.triu_indices(n - i - 1, 1)
        j, k = j + i + 1, k + i + 1
        onto = _closest(lo[i, j], lo[i, k], lo[j, k])
        tree = _closest(lt[i, j], lt[i, k], lt[j, k])
        ok = onto >= 0
        resolved += int(ok.sum())
        agree += int((ok & (onto == tree)).sum())
    return agree, resolved


def _uaes_throughput(t, vectors, onto, quick):
    rng = np.random.default_rng(1)
    n = 2048 if quick else 16384
    labels = rng.integers(0, t.n_classes, n)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    z = unit[labels] + 0.02 * rng.normal(size=(n, unit.shape[1])).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    h_star = uaes.calibrate(z, t, TEMPERATURE, 0.8)  # also compiles
    secs, inf = best_time(lambda: uaes.infer(z, t, TEMPERATURE, h_star), 3)
    m = uaes.metrics(inf, labels, t, onto)
    return {
        "uaes_samples": n,
        "uaes_samples_per_s": n / secs,
        "uaes_s": secs,
        "uaes_h_star": h_star,
        "uaes_metrics": m,
        "uaes_flat_accuracy": uaes.flat_accuracy(z, unit, labels),
    }


def run(quick: bool) -> dict:
    onto, onto_leaves = wordnet.wordnet_imagenet()
    vectors, source = _class_vectors()
    t0 = time.perf_counter()
    t = build(vectors)
    build_s = time.perf_counter() - t0
    n = t.n_classes
    args = (t.parent, t.leaves, onto.parent, onto_leaves)
    reps = 3 if quick else 10
    ours_s, ours_t = best_time(lambda: consistency.triplet_agreement(*args), reps)

    pick = np.sort(np.random.default_rng(2).choice(n, N_SUB, replace=False))
    sub = (t.parent, t.leaves[pick], onto.parent, onto_leaves[pick])
    base_sub_s, base_counts = best_time(
        lambda: enumerate_counts(*sub), 1 if quick else 3
    )
    ours_counts = consistency.triplet_counts(*sub)
    per_base = base_sub_s / comb(N_SUB, 3)
    extra = {}
    if not quick:
        full_s, full_counts = best_time(lambda: enumerate_counts(*args), 1)
        ours_full = consistency.triplet_counts(*args)
        extra = {
            "baseline_full_n_s": full_s,
            "baseline_full_n_counts": list(full_counts),
            "full_n_counts_identical": list(full_counts) == list(ours_full),
        }
    ok = ours_counts == base_counts and (not extra or extra["full_n_counts_identical"])
    sub_t = base_counts[0] / base_counts[1]
    return {
        "ours_s": ours_s,
        "baseline": f"NumPy enumeration of all C({N_SUB}, 3) triplets of a random "
        f"{N_SUB}-class subset (loop over the first class, pairs vectorised), "
        "extrapolated per triplet to n = 1000, CPU",
        "baseline_s": per_base * comb(n, 3),
        "agreement": {
            "subset_counts_ours": list(ours_counts),
            "subset_counts_baseline": list(base_counts),
            "subset_T_ours": ours_counts[0] / ours_counts[1],
            "subset_T_baseline": sub_t,
        },
        "agreement_ok": bool(ok),
        "params": {
            "classes": n,
            "subset": N_SUB,
            "triplets": comb(n, 3),
            "subset_triplets": comb(N_SUB, 3),
            "tree": f"average linkage on cosine over {source}",
            "ontology": "WordNet 3.0 hypernyms (first-hypernym rule), "
            f"{len(onto.parent)} nodes",
            "tree_height": trees.height(t.parent),
            "ontology_height": trees.height(onto.parent),
            "repeats": reps,
        },
        "extra": {
            "T": ours_t,
            "ours_ns_per_triplet": 1e9 * ours_s / comb(n, 3),
            "baseline_ns_per_triplet": 1e9 * per_base,
            "baseline_subset_s": base_sub_s,
            "build_tree_s": build_s,
            "cophenetic_spearman": consistency.cophenetic_correlation(
                t, onto.parent, onto_leaves
            ),
            **extra,
            **_uaes_throughput(t, vectors, (onto.parent, onto_leaves), quick),
        },
    }
