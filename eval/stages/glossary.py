"""The glossary of the main job's report: every term the stages' sections
use, defined once (`report.write_report` prints it after the sections)."""

__all__ = ["GLOSSARY"]

GLOSSARY = (
    (
        "variant",
        "the size setting of this job (`tiny` for CI, `default` for "
        "`make demo`, `full` for the larger studies)",
    ),
    (
        "CAV",
        "concept activation vector: the normal of a linear classifier that "
        "separates a layer's activations of concept images from random images",
    ),
    (
        "TCAV score",
        "fraction of a class's images whose logit increases along "
        "the CAV (positive directional derivative); 0.5 is chance",
    ),
    (
        "Bonferroni",
        "p-values multiplied by the number of tests (capped at 1), "
        "so the family-wise error stays at the stated level",
    ),
    (
        "Net2Vec probe",
        "a 1x1 convolution + sigmoid on a layer's activations "
        "that predicts a concept's segmentation mask",
    ),
    (
        "set IoU",
        "intersection over union of predicted and true concept masks, "
        "summed over all held-out images before dividing",
    ),
    (
        "LoCE",
        "local concept embedding: the Net2Vec probe fitted to one image's "
        "single object mask (one vector per object instance and layer)",
    ),
    ("ml", "multi-layer: the LoCEs of all analysed layers concatenated"),
    (
        "ARI",
        "adjusted Rand index between two partitions: 1 identical, about 0 "
        "for chance agreement",
    ),
    (
        "purity",
        "share of the members of each hierarchical cluster that carry "
        "the cluster's majority concept, averaged over clusters",
    ),
    (
        "separation",
        "Sep(a, b): smallest distance between a member of a and a "
        "member of b, divided by the largest distance within their union",
    ),
    (
        "overlap",
        "Ov(a <- b): share of b's LoCEs that fall inside a's region "
        "(its GMM 1-sigma ellipses in the 2-D embedding)",
    ),
    (
        "mAP@K",
        "mean over queries of average precision over the top K "
        "retrieved items (Hamming ranking of binary codes)",
    ),
    (
        "reference semantics",
        "mAP@K as the DUCH/CHNR code computes it: AP "
        "normalised by min(K, number of relevant items), ranks over the full list",
    ),
    ("I→T, T→I", "image queries retrieving captions, and the reverse"),
    (
        "p (noise rate)",
        "probability that a training image's caption is "
        "replaced by a caption of an image of another scene",
    ),
    (
        "ICE / NMF concepts",
        "components of a non-negative factorisation of a layer's activations "
        "(A ~ S W, W >= 0): each row of W is a discovered concept direction",
    ),
    (
        "SAE",
        "sparse autoencoder (TopK): an overcomplete dictionary whose codes keep "
        "the k largest activations per sample",
    ),
    (
        "R²",
        "share of the activations' variance the dictionary reconstructs",
    ),
    (
        "stability (dictionaries)",
        "mean best-match cosine between the components of two seeds' "
        "dictionaries (1: the same concepts found again)",
    ),
    (
        "component IoU",
        "IoU between a component's thresholded activation map and a planted "
        "concept's mask (SynthAerial's ground truth)",
    ),
    (
        "relevance mass",
        "share of an attribution map's positive mass inside the explained "
        "concept's mask (Arras et al. 2022)",
    ),
    (
        "pointing game",
        "1 when the map's maximum lies within a tolerance of the concept's mask",
    ),
    (
        "deletion / insertion AUC",
        "area under the class probability as the most relevant pixels are "
        "removed (lower is more faithful) / revealed from a blurred copy "
        "(higher is more faithful) (Petsiuk et al. 2018)",
    ),
    (
        "randomisation check",
        "rank correlation (Spearman) and SSIM between a map and the map after "
        "re-drawing the top layers' weights; near 0 means the map depends on "
        "what the model learnt (Adebayo et al. 2018)",
    ),
    (
        "seed Kendall",
        "Kendall tau between |attribution| ranks of two runs of a sampled "
        "method with different keys (1: reproducible)",
    ),
    (
        "U_epi",
        "epistemic uncertainty: disagreement between a model's members "
        "(bootstrap refits, trees, MC-dropout passes) on one input",
    ),
    (
        "XD / EG / XEC",
        "explanation drift (mean Kendall tau of |phi| ranks, clean vs "
        "perturbed), epistemic gain (sum of perturbed U_epi over clean) and "
        "their Spearman correlation across perturbation levels (< -0.6 strong)",
    ),
    (
        "CV_epi",
        "coefficient of variation of U_epi over the test set (std / mean); "
        "high values mean U_epi separates samples",
    ),
    (
        "deferral rate nu / cost q",
        "share of samples declined (those with the highest U_epi); q = m/d + "
        "(1 - nu), explanation cost relative to explaining every sample",
    ),
    (
        "removal shift",
        "mean squared change of the log-odds when the top-k attributed "
        "features are set to their training medians",
    ),
    (
        "1D / 2D / 3D CAV",
        "a CAV fitted on a layer's spatial mean (C features), channel mean "
        "(h x w) or whole map (h x w x C)",
    ),
    (
        "retrieval stability S",
        "S = held-out separation x consistency of R CAVs of one concept, layer "
        "and view, each fitted on its own random n + n scenes (reconstruction "
        "of Mikriukov et al. 2023)",
    ),
    (
        "consistency K",
        "mean pairwise cosine between the R CAVs of one concept (1: the same "
        "direction every run)",
    ),
    (
        "held-out separation",
        "share of held-out concept and non-concept scenes a CAV's linear "
        "classifier labels correctly (stability stage; not LoCE's Sep)",
    ),
    (
        "sign-flip rate",
        "share of concept attributions <gradient, CAV> whose sign differs "
        "between two repeats with fresh input noise",
    ),
    (
        "SmoothGrad",
        "layer gradients averaged over n noisy copies of the image plus the "
        "clean image (Smilkov et al. 2017)",
    ),
    (
        "linear CKA",
        "centred kernel alignment of two layers' activations on the same "
        "images (Kornblith et al. 2019): 1 for representations equal up to "
        "rotation and scale; a concept-free layer similarity",
    ),
    (
        "relative depth",
        "a compared layer's index / (number of compared layers - 1): 0 for the "
        "first, 1 for the last",
    ),
    (
        "best match",
        "a layer's most similar layer of the other network (row maximum); its "
        "distance is the difference of their relative depths, compared with "
        "the mean distance of a uniformly random match",
    ),
    (
        "semantic flow",
        "a network compared with itself, each layer matched to its most "
        "similar other layer",
    ),
    (
        "triplet agreement T",
        "share of class triplets resolved by the ontology whose closest pair "
        "the extracted tree agrees on",
    ),
    (
        "EdgeCons",
        "share of tree edges whose parent's name is an ontology ancestor of "
        "the child's name",
    ),
    (
        "cophenetic correlation",
        "Spearman correlation of the tree's merge heights with ontology path lengths",
    ),
    (
        "UAES",
        "tree-traversal inference that stops at a node when the entropy of "
        "its children's probabilities exceeds a threshold h*",
    ),
    (
        "ASR",
        "attack success rate: share of (image, target) pairs whose adversarial "
        "image the model assigns to the target class",
    ),
    (
        "latent perturbation",
        "Delta = A(x_adv) - A(x): the change an adversarial image causes in a "
        "layer's activations",
    ),
    (
        "explained variance ratio",
        "share of the stacked latent perturbations' variance carried by each "
        "global component (PCA)",
    ),
    (
        "specificity gap",
        "mean similarity of perturbation directions of runs with the same "
        "target minus that of runs with different targets; p from a "
        "permutation test of the target labels",
    ),
    (
        "new concept",
        "an NMF concept of adversarial activations whose best cosine match "
        "among the clean source image's concepts is below gamma",
    ),
)
