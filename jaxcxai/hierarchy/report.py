"""Report of a semantic-hierarchies study: tables, the modality finding.

Plain results in (`run.hierarchy`'s dict), no config. The abstract of
Schwalbe et al. 2026 (arXiv:2603.26798) states the findings checked here:
text-encoder hierarchies match human taxonomies better than image-encoder
ones, and aligning an embedding space to an ontology trades zero-shot
accuracy for ontological plausibility. Both verdicts are stated from the
numbers, whatever they show. Everything past the abstract (measures, UAES
rule, alignment loss) is a reconstruction, listed in `RECONSTRUCTIONS`.
"""

from __future__ import annotations

__all__ = ["RECONSTRUCTIONS", "markdown", "num"]

RECONSTRUCTIONS = (
    ("pipeline", "xai.md 3.2 as a whole: only the abstract and the opening of "
     "the introduction of the paper were read; centroids, average-linkage "
     "trees, naming, the consistency measures, UAES and the alignment loss "
     "follow the spec's reconstruction"),
    ("two-tower model", "no VLM weights ship offline: the SynthAerial source is a "
     "CLIP-style pair of linear heads over frozen MobileNetV2 and MiniLM "
     "features trained in the project (symmetric InfoNCE, learned "
     "temperature), not one of the paper's 13 VLMs"),
    ("image-side ImageNet view", "the class weight vectors of the packaged "
     "ImageNet classifiers stand in for image centroids (no ImageNet images "
     "offline); their trees are named by each WordNet node's mean class "
     "vector, as a classifier's weight space has no text side"),
    ("concept bank", "the ontology's internal node names (WordNet hypernyms of "
     "the classes, or the SynthAerial scene taxonomy) in the class-name prompt "
     "templates; no generic noun list"),
    ("WordNet tree", "one parent per synset (the first listed hypernym), the "
     "restriction to the classes' root paths with unary chains kept"),
    ("worst-placed classes", "placement error of a class = mean height of the "
     "WordNet LCA above it over its tree siblings (the classes under its tree "
     "parent)"),
    ("alignment", "an MLP or linear transform of the class centroids trained on "
     "UMAP's fuzzy cross-entropy to the ontology's LCA-distance neighbourhood "
     "graph plus lambda times the mean squared displacement; ImageNet views are "
     "aligned on an evenly spaced class subset; an image view moves the images, "
     "a text view the class prompts"),
)  # fmt: skip


def num(x, fmt=".3f") -> str:
    """x formatted, or "n/a" for a missing (None) value."""
    return "n/a" if x is None else format(x, fmt)


_n = num


def _yn(x: bool) -> str:
    return "yes" if x else "no"


def _view_table(views) -> list[str]:
    lines = ["| view | classes | modality | n | T (triplet) | EdgeCons | cophenetic "
             "| leaf cover | naming margin | zero-shot | UAES leaf acc. / coverage "
             "/ hier. correct | stop depth |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in views:
        s, inf = r["structure"], r.get("inference")
        uaes = (
            f"{_n(inf['leaf_accuracy'])} / {_n(inf['coverage'])} / "
            f"{_n(inf['hierarchical_correctness'])}"
            if inf
            else "n/a (no images)"
        )
        lines.append(
            f"| {r['name']} | {r['classes']} | {r['modality']} | {r['num_classes']} | "
            f"{_n(s['triplet'])} | {_n(s['edge'])} | {_n(s['cophenetic'])} | "
            f"{_n(s['leaf_cover'])} | {_n(s['margin'])} | "
            f"{_n(inf['zero_shot_accuracy']) if inf else 'n/a'} | {uaes} | "
            f"{_n(inf['stop_depth'], '.2f') if inf else 'n/a'} |"
        )  # fmt: skip
    return lines


def _finding(results) -> list[str]:
    rows = results["comparison"]
    if not rows:
        return ["No class set has both a text and an image view: no modality "
                "comparison."]  # fmt: skip
    lines = ["| classes | text views | image views | T text / image | cophenetic "
             "text / image | text matches the ontology better |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for c in rows:
        lines.append(
            f"| {c['classes']} | {', '.join(c['text_views'])} | "
            f"{', '.join(c['image_views'])} | {_n(c['text_triplet'])} / "
            f"{_n(c['image_triplet'])} | {_n(c['text_cophenetic'])} / "
            f"{_n(c['image_cophenetic'])} | {_yn(c['text_better'])} |"
        )
    lines.append("")
    for c in rows:
        onto = "WordNet" if c["classes"] == "imagenet" else "the scene taxonomy"
        lines.append(
            f"{c['classes']}: does the text modality match {onto} better than the "
            f"image modality on both triplet agreement and cophenetic correlation? "
            f"**{_yn(c['text_better'])}** (T {_n(c['text_triplet'])} vs "
            f"{_n(c['image_triplet'])}, cophenetic {_n(c['text_cophenetic'])} vs "
            f"{_n(c['image_cophenetic'])})."
        )
    lines += ["", "The paper's finding (abstract): text encoders induce hierarchies "
              "that match human taxonomies better, image encoders are more "
              "discriminative."]  # fmt: skip
    return lines


def _align_table(r) -> list[str]:
    al, m = r["align"], r["align"]["metrics"]
    has_zs = "zero_shot_accuracy" in m
    lines = [f"**{r['name']}** ({al['num_classes']} classes aligned)", "",
             "| lambda | T | cophenetic | EdgeCons | " + ("zero-shot | " if has_zs else "")
             + "distortion |",
             "|---|---|---|---|" + ("---|" if has_zs else "") + "---|"]  # fmt: skip
    for i, lam in enumerate(al["lams"]):
        cells = [
            ("inf (unaligned)" if lam is None else f"{lam:g}"),
            _n(m["triplet"][i]),
            _n(m["cophenetic"][i]),
            _n(m["edge"][i]),
        ]
        if has_zs:
            cells.append(_n(m["zero_shot_accuracy"][i]))
        cells.append(_n(m["fidelity"][i], ".4f"))
        lines.append("| " + " | ".join(cells) + " |")
    trip, zs = m["triplet"], m.get("zero_shot_accuracy")
    best = al["lams"].index(al["best_lam"]) if al["best_lam"] in al["lams"] else None
    if best is not None and trip[0] is not None and trip[best] is not None:
        text = (
            f"Best T after alignment {_n(trip[best])} at lambda = "
            f"{al['best_lam']:g} (unaligned {_n(trip[0])})"
        )
        if zs and zs[0] is not None and zs[best] is not None:
            text += f"; zero-shot accuracy {_n(zs[0])} -> {_n(zs[best])}"
        after, before = al.get("after"), r.get("inference")
        if after and before:
            text += (
                f"; UAES leaf accuracy / coverage {_n(before['leaf_accuracy'])} / "
                f"{_n(before['coverage'])} -> {_n(after['leaf_accuracy'])} / "
                f"{_n(after['coverage'])}"
            )
        lines += ["", text + "."]
    return lines + [""]


def _worst_table(r) -> list[str]:
    lines = [f"**{r['name']}**: the {len(r['worst'])} classes whose tree siblings "
             "are farthest in WordNet (error: mean height of the WordNet LCA above "
             "the class)", "",
             "| class | error | tree neighbours (nearest first) | WordNet LCA with "
             "the nearest | tree parent's name |", "|---|---|---|---|---|"]  # fmt: skip
    for w in r["worst"]:
        lines.append(f"| {w['class']} | {w['error']:.2f} | {', '.join(w['neighbours'])}"
                     f" | {w['onto_lca']} | {w['tree_parent'] or 'unnamed'} |")  # fmt: skip
    return lines + [""]


def _two_tower(info) -> list[str]:
    if not info:
        return []
    loss = info["loss_curve"]
    return [
        "### Two-tower model (SynthAerial)", "",
        f"Features: {info['features']}; {info['num_train']} training and "
        f"{info['num_test']} held-out images, {info['train_pairs']} image-caption "
        f"pairs; InfoNCE {loss[0]:.3f} -> {loss[-1]:.3f} over {len(loss)} steps, "
        f"learned logit scale {info['logit_scale']:.1f}. Zero-shot accuracy over "
        f"the 13 scene classes: {info['zero_shot_accuracy']:.3f} held-out, "
        f"{info['zero_shot_train_accuracy']:.3f} training (chance 0.077).", "",
    ]  # fmt: skip


def markdown(results: dict, with_reconstructions: bool = True) -> str:
    """The report section: views, the modality finding, alignment, worst."""
    views = results["views"]
    skipped = "; ".join(f"{s}: skipped, {why}" for s, why in results["skipped"].items())
    lines = [
        f"### Semantic hierarchies: {len(views)} views of "
        f"{len(results['sources']) - len(results['skipped'])} sources",
        "",
        "Per view: the average-linkage tree of the class centroids, internal nodes "
        "named from the ontology's node names; T = share of the ontology's "
        "resolved class triplets whose closest pair the tree agrees on; EdgeCons = "
        "share of tree edges whose parent name is a WordNet/taxonomy ancestor of "
        "the child's; cophenetic = Spearman correlation of tree merge heights "
        "with ontology path lengths; UAES at the threshold giving "
        f"{results['settings']['verify']['target_coverage']:.0%} leaf coverage on "
        "the training images." + (f" {skipped}." if skipped else ""),
        "",
        *_two_tower(results["two_tower"]),
        "### Views", "",
        *_view_table(views), "",
        "### Text against image modality", "",
        *_finding(results), "",
        "### Alignment: accuracy against plausibility", "",
        "Lambda weighs the fidelity term (large: stay close to the original "
        "space); inf is the unaligned baseline on the same classes.", "",
    ]  # fmt: skip
    for r in views:
        lines += _align_table(r)
    worst = [r for r in views if r.get("worst")]
    if worst:
        lines += ["### Worst-placed ImageNet classes", ""]
        for r in worst:
            lines += _worst_table(r)
    if with_reconstructions:
        lines += ["### Reconstructions (not verified against the paper)", ""]
        lines += [f"- {part}: {why}." for part, why in RECONSTRUCTIONS]
    return "\n".join(lines).rstrip()
