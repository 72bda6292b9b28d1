"""The semantic-hierarchies study end to end: the two-tower heads, the
embedding sources, `eval.hierarchy` on a reduced tiny config, the main-job
stage `hierarchy` and the config checks.

References are independent: InfoNCE in float64 NumPy, the sharded heads
against the same fit on one device, the towers against a NumPy forward
pass, the classifier views against the weight file read directly, and from
the saved arrays the agglomerative tree (scipy), the triplet agreement (all
triplets enumerated in Python), the cophenetic correlation (scipy on brute
force ontology path lengths), the edge consistency (names looked up in the
taxonomy) and the zero-shot accuracy.
"""

import itertools
import json
import os
import re

import jax
import numpy as np
import pytest
import scipy.stats
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import pdist

from configs import hierarchy as hierarchy_config
from eval import hierarchy as eval_hierarchy
from eval.stages import hierarchy as stage_hierarchy
from jaxcxai import parallel
from jaxcxai.hierarchy import (
    aerial,
    heads,
    heads_training,
    ontology,
    report,
    sources,
    study,
)
from tests.paths import CONFIGS, FIXTURES

CONFIG = os.path.join(CONFIGS, "hierarchy.py")
PNG = b"\x89PNG\r\n\x1a\n"
# A reduced tiny run: the two-tower model on synthetic features and the
# MobileNetV2 classifier view of 24 ImageNet classes.
SMALL = ["--config.sources=('synthaerial', 'imagenet')", "--config.heads.steps=50",
         "--config.imagenet.num_classes=24", "--config.align.steps=30"]  # fmt: skip


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == PNG


def test_info_nce_matches_float64_numpy():
    rng = np.random.default_rng(0)
    zi, zt = rng.normal(size=(2, 6, 5))
    zi /= np.linalg.norm(zi, axis=1, keepdims=True)
    zt /= np.linalg.norm(zt, axis=1, keepdims=True)
    logits = 7.0 * zi @ zt.T

    def xent(m):  # rows: -log softmax at the diagonal
        m = m - m.max(1, keepdims=True)
        return np.mean(np.log(np.exp(m).sum(1)) - np.diag(m))

    want = 0.5 * (xent(logits) + xent(logits.T))
    got = heads.info_nce(zi.astype(np.float32), zt.astype(np.float32), 7.0)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_sharded_heads_equal_one_device_and_learn():
    data = aerial.synthetic_features(jax.random.key(3), num_images=104)
    kw = dict(dim=16, steps=40, batch_size=32, lr=3e-3, chunk=20)
    got = heads_training.fit(jax.random.key(0), data.image, data.text, **kw)
    one = parallel.make_mesh(devices=jax.devices()[:1])
    ref = heads_training.fit(jax.random.key(0), data.image, data.text, mesh=one, **kw)
    np.testing.assert_allclose(got.losses, ref.losses, rtol=2e-4, atol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5),
                 got.params, ref.params)  # fmt: skip
    assert got.losses[-10:].mean() < 0.8 * got.losses[:10].mean()
    # Every step trains on distinct images, captions in range.
    img, cap = heads_training.batch_indices(jax.random.key(1), 104, 5, 32, 7)
    assert img.shape == cap.shape == (7, 32) and cap.min() >= 0 and cap.max() < 5
    assert all(len(set(row)) == 32 for row in img.tolist())
    # The towers: a NumPy forward pass of the trained linear heads.
    p = got.params
    x = (data.image[:5] - got.image_norm.mean) / got.image_norm.std
    z = x @ p["image_head"]["out"]["kernel"] + p["image_head"]["out"]["bias"]
    want = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(heads.encode(got, data.image[:5], "image"), want,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    t = (data.prompts - got.text_norm.mean) / got.text_norm.std
    t = t @ p["text_head"]["out"]["kernel"] + p["text_head"]["out"]["bias"]
    t = (t / np.linalg.norm(t, axis=-1, keepdims=True)).mean(1)
    np.testing.assert_allclose(heads.prompt_embeddings(got, data.prompts),
                               t / np.linalg.norm(t, axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    # Bad input is named.
    with pytest.raises(ValueError, match="for the same N"):
        heads_training.fit(jax.random.key(0), data.image[:10], data.text, **kw)
    with pytest.raises(ValueError, match="trained on 64"):
        heads.encode(got, data.image[:, :10], "image")
    bad = data.image.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="image features has 1 non-finite"):
        heads.encode(got, bad, "image")


def test_imagenet_views_against_direct_reads():
    from jaxcxai.hierarchy import wordnet
    from jaxcxai.models.pretrained import weight_file
    from jaxcxai.models.torch_io import read_state_dict

    def fake_encode(texts):  # a deterministic stand-in for MiniLM
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=8)
                         for t in texts])  # fmt: skip

    templates = ("a photo of a {}.", "a drawing of the {}.")
    text, clf = sources.imagenet_views(num_classes=9, templates=templates,
                                       classifiers=("mobilenet_v2",),
                                       encode=fake_encode)  # fmt: skip
    picked = np.linspace(0, 999, 9).round().astype(int)
    wnids, _ = wordnet.imagenet_classes()
    assert [text.onto.ids[i] for i in text.leaves] == [wnids[i] for i in picked]
    w = read_state_dict(weight_file("mobilenet_v2"))["classifier.1.weight"][picked]
    np.testing.assert_allclose(clf.centroids, w / np.linalg.norm(w, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    e = fake_encode([t.format(n) for n in text.class_names for t in templates])
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    m = e.reshape(9, 2, 8).mean(1)
    np.testing.assert_allclose(text.centroids, m / np.linalg.norm(m, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    # The bank: each internal WordNet node of the subtree once, by name.
    internal = set(range(len(text.onto))) - set(ontology.leaf_nodes(text.onto).tolist())
    assert set(text.bank_onto.tolist()) <= internal
    assert {text.onto.names[i].lower() for i in internal} == {
        b.lower() for b in text.bank_names
    }
    assert clf.bank_kind == "centroid" and text.bank_kind == "same"


def _triplets_bruteforce(parent, leaves, onto_parent, onto_leaves):
    def path(par, i):
        out = [i]
        while par[out[-1]] >= 0:
            out.append(par[out[-1]])
        return out

    def lca_depth(par, a, b):
        pa = path(par, a)
        common = next(x for x in path(par, b) if x in pa)
        return len(path(par, common)) - 1

    agree = resolved = 0
    for a, b, c in itertools.combinations(range(len(leaves)), 3):
        o = [lca_depth(onto_parent, onto_leaves[x], onto_leaves[y])
             for x, y in ((a, b), (a, c), (b, c))]  # fmt: skip
        if sorted(o)[2] == sorted(o)[1]:
            continue  # the ontology does not resolve the triplet
        t = [
            lca_depth(parent, leaves[x], leaves[y]) for x, y in ((a, b), (a, c), (b, c))
        ]
        resolved += 1
        agree += int(np.argmax(t) == np.argmax(o) and sorted(t)[2] > sorted(t)[1])
    return agree / resolved


def _path_lengths(parent, leaves):
    def path(i):
        out = [i]
        while parent[out[-1]] >= 0:
            out.append(parent[out[-1]])
        return out

    n = len(leaves)
    d = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        pi, pj = path(leaves[i]), path(leaves[j])
        common = next(x for x in pj if x in pi)
        d[i, j] = d[j, i] = pi.index(common) + pj.index(common)
    return d


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hierarchy")
    eval_hierarchy.main(["--config", f"{CONFIG}:tiny", "--workdir", str(work), *SMALL])
    return work


def test_script_end_to_end(tiny_run, capsys):
    work = tiny_run
    text = (work / study.RESULTS).read_text()
    assert not re.search(r"\bNaN\b|Infinity", text)  # strict JSON
    res = json.loads(text)
    arrays = study.load_npz(str(work / study.ARRAYS))
    names = [v["name"] for v in res["views"]]
    assert names == ["two-tower image", "two-tower text", "mobilenet_v2 classifier"]
    assert res["skipped"] == {} and res["views"][2]["num_classes"] == 24
    taxonomy, _ = ontology.synthaerial_taxonomy("scenes")
    for v in res["views"]:
        slug = f"{v['source']}.{v['name'].replace(' ', '_').replace('-', '_')}"
        a = {
            k[len(slug) + 1 :]: x for k, x in arrays.items() if k.startswith(slug + ".")
        }
        # Extract: the average-linkage tree of the saved centroids (scipy).
        z = linkage(pdist(a["centroids"].astype(np.float64), "cosine"), "average")
        np.testing.assert_allclose(a["linkage"][:, 2], z[:, 2], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(a["linkage"][:, :2], z[:, :2])
        n = len(a["leaves"])
        leaves, onto_p, s = np.arange(n), a["onto_parent"], v["structure"]
        want = _triplets_bruteforce(a["parent"], leaves, onto_p, a["leaves"])
        assert s["triplet"] == pytest.approx(want, abs=1e-12)
        iu = np.triu_indices(n, 1)
        rho = scipy.stats.spearmanr(cophenet(z), _path_lengths(onto_p, a["leaves"])[iu])
        assert s["cophenetic"] == pytest.approx(rho.statistic, abs=1e-6)
        # The unaligned baseline of the sweep is the same tree on all classes.
        assert v["align"]["metrics"]["triplet"][0] == pytest.approx(s["triplet"])
        if "samples" in a:
            pred = np.argmax(a["samples"] @ a["classifier"].T, axis=1)
            acc = v["inference"]["zero_shot_accuracy"]
            assert acc == pytest.approx(np.mean(pred == a["labels"]), abs=1e-12)
        if v["classes"] == "synthaerial":  # EdgeCons from the names alone
            node = {}
            for i, nm in enumerate(taxonomy.names):
                node.setdefault(nm, i)
            parent, nn = a["parent"], v["node_names"]
            ok = [nn[p] in node and nn[u] in node and
                  ontology.is_ancestor(taxonomy, node[nn[p]], node[nn[u]])
                  for u, p in enumerate(parent) if p >= 0]  # fmt: skip
            assert s["edge"] == pytest.approx(np.mean(ok), abs=1e-12)
    (row,) = res["comparison"]
    t, i = res["views"][1]["structure"], res["views"][0]["structure"]
    assert row["text_better"] == (t["triplet"] > i["triplet"]
                                  and t["cophenetic"] > i["cophenetic"])  # fmt: skip
    assert len(res["views"][2]["worst"]) == 10
    figs = ("dendrograms.png", "coverage_accuracy.png", "tradeoff.png")
    assert all(_is_png(work / f) for f in figs)
    md = (work / study.REPORT).read_text()
    assert not re.search(r"\bNone\b|\bnan\b", md)
    assert "### Text against image modality" in md and "| mobilenet_v2" in md
    for part, _ in report.RECONSTRUCTIONS:
        assert part in md


def test_stage_on_a_small_config(tmp_path):
    config = hierarchy_config.get_config("tiny")
    config.sources = ("synthaerial", "clip")
    config.heads.steps, config.align.steps = 50, 30
    out = stage_hierarchy.hierarchy(config, str(tmp_path))
    assert "Reconstructions" not in out["markdown"]  # listed by the main report
    assert not re.search(r"\bNone\b|\bnan\b", out["markdown"])
    assert out["figures"] and all(_is_png(tmp_path / f) for f in out["figures"])
    assert "synthaerial: text" in out["summary"]
    assert out["reconstructions"] and all(len(r) == 2 for r in out["reconstructions"])
    assert any("synthetic stand-in" in c for c in out["caveats"])
    assert any("No text view of the ImageNet" in c for c in out["caveats"])
    assert out["results"]["skipped"] == {
        "clip": "no checkpoint given (`clip.checkpoint` is empty)"
    }
    json.dumps(out)  # the main job stores it as JSON


def test_clip_source_on_a_tiny_checkpoint():
    from jaxcxai.hierarchy import clip_source

    fix = os.path.join(FIXTURES, "open_clip")
    cfg = hierarchy_config.get_config("tiny")
    cfg.clip.checkpoint = os.path.join(fix, "tiny-rn.pt")
    cfg.clip.config = os.path.join(fix, "tiny-rn.json")
    cfg.clip.num_images, cfg.imagenet.num_classes = 91, 6
    st = eval_hierarchy.check(cfg)
    views = clip_source.clip_views(st.clip, st.imagenet)
    assert [v.name for v in views] == ["OpenCLIP image", "OpenCLIP text",
                                       "OpenCLIP text (ImageNet)"]  # fmt: skip
    image, text, inet = views
    assert image.centroids.shape == (13, 24) and inet.centroids.shape == (6, 24)
    # Image centroids: normalised class means of the normalised embeddings.
    z, lab = image.train_samples, image.train_labels
    m = np.stack([z[lab == c].mean(0) for c in range(13)])
    np.testing.assert_allclose(image.centroids, m / np.linalg.norm(m, axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert text.classifier is image.classifier and inet.source == "clip"


@pytest.mark.parametrize(
    "override, named",
    [("--config.sources=('flickr',)", "sources"),
     ("--config.imagenet.classifiers=('resnet18',)", "imagenet.classifiers"),
     ("--config.verify.linkage=single", "verify.linkage"),
     ("--config.clip.checkpoint=/nonexistent/model.pt", "clip.checkpoint"),
     ("--config.synthaerial.features=tfds", "synthaerial.features"),
     ("--config.align.kind=deep", "align.kind"),
     ("--config.imagenet.wordnet_dir=/nonexistent", "imagenet.wordnet_dir")],
)  # fmt: skip
def test_bad_settings_are_rejected(tmp_path, capsys, override, named):
    with pytest.raises(SystemExit) as e:
        eval_hierarchy.main(["--config", f"{CONFIG}:tiny", "--workdir",
                             str(tmp_path / "w"), override])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_imagenet_is_skipped_without_wordnet(tmp_path, monkeypatch):
    from jaxcxai.hierarchy import run

    monkeypatch.setenv("JAXCXAI_WORDNET", str(tmp_path))  # no data.noun there
    cfg = hierarchy_config.get_config("tiny")
    cfg.sources = ("imagenet",)
    views, _, skipped, _ = run.build_views(eval_hierarchy.check(cfg), jax.random.key(0))
    assert views == [] and "WordNet 3.0 is not installed" in skipped["imagenet"]
    assert "apt-get install wordnet-base" in skipped["imagenet"]
