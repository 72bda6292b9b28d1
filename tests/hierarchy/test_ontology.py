"""Ontologies: WordNet reader, parent-array trees, SynthAerial taxonomy.

References are independent of the code under test: WordNet 3.0's published
tabby-cat route (real ids and lemmas typed in), brute-force routes and
ancestor sets built from Python sets, the data module's own constants, and
a fixture cut by a separate script (tests/fixtures/wordnet/make_fixture.py).
"""

import json
import os
import shutil

import numpy as np
import pytest

from jaxcxai.data import synthaerial as sa
from jaxcxai.data.validate import DataFormatError
from jaxcxai.hierarchy import ontology as O
from jaxcxai.hierarchy import wordnet as W
from tests.paths import FIXTURES

FIX = os.path.join(FIXTURES, "wordnet")
SYSTEM = "/usr/share/wordnet"
needs_system = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SYSTEM, "data.noun")),
    reason="system WordNet missing (apt-get install wordnet-base)",
)
# WordNet 3.0: tabby.n.01 up to entity.n.01 (real offsets and first lemmas).
TABBY = [
    ("n02123045", "tabby"), ("n02121808", "domestic_cat"), ("n02121620", "cat"),
    ("n02120997", "feline"), ("n02075296", "carnivore"),
    ("n01886756", "placental"), ("n01861778", "mammal"),
    ("n01471682", "vertebrate"), ("n01466257", "chordate"),
    ("n00015388", "animal"), ("n00004475", "organism"),
    ("n00004258", "living_thing"), ("n00003553", "whole"),
    ("n00002684", "object"), ("n00001930", "physical_entity"),
    ("n00001740", "entity"),
]  # fmt: skip


@pytest.fixture(scope="module")
def fix():
    with open(os.path.join(FIX, "wnids.json")) as f:
        maps = json.load(f)
    to_fix = maps["wnids"]
    return W.read_nouns(FIX), to_fix, {v: k for k, v in to_fix.items()}, maps


def _routes(nouns, off):
    """Brute force: every root route through @ and @i, as lists."""
    ups = nouns[off].hypernyms + nouns[off].instance_hypernyms
    return [[off]] if not ups else [[off, *r] for h in ups for r in _routes(nouns, h)]


def test_tabby_path_on_fixture(fix):
    nouns, to_fix, to_real, _ = fix
    tabby = W.read_index(FIX)["tabby"][0]
    assert W.wnid(tabby) == to_fix["n02123045"]
    path = W.hypernym_path(nouns, tabby)
    assert [(to_real[W.wnid(o)], nouns[o].words[0]) for o in path] == TABBY


@needs_system
def test_tabby_path_on_system_wordnet():
    nouns = W.read_nouns(SYSTEM)
    path = W.hypernym_path(nouns, "n02123045")
    assert [(W.wnid(o), nouns[o].words[0]) for o in path] == TABBY
    assert len(nouns) == 82115  # WordNet 3.0 noun synsets


def test_fixture_files_agree(fix):
    """Every index entry points at a synset holding that lemma, and back."""
    nouns, to_fix, _, maps = fix
    index = W.read_index(FIX)
    pairs = {(lem, o) for lem, offs in index.items() for o in offs}
    want = {(w.lower(), o) for o, s in nouns.items() for w in s.words}
    assert pairs == want
    assert sorted(W.wnid(o) for o in nouns) == sorted(to_fix.values())
    assert all(to_fix[w] for w in maps["classes"].values())


def test_parent_rules_against_all_routes(fix):
    nouns, to_fix, _, _ = fix
    dog = nouns[W.offset_of(to_fix["n02084071"])]
    canine, domestic = to_fix["n02083346"], to_fix["n01317541"]
    assert [W.wnid(h) for h in dog.hypernyms] == [canine, domestic]
    assert W.wnid(W.choose_parent(nouns, dog.offset, "first")) == canine
    assert W.wnid(W.choose_parent(nouns, dog.offset, "shortest")) == domestic
    for off in nouns:
        routes = _routes(nouns, off)
        assert W.hypernym_paths(nouns, off) == routes
        assert W.hypernym_path(nouns, off, "first") == routes[0]
        short = W.hypernym_path(nouns, off, "shortest")
        assert short in routes and len(short) == min(map(len, routes))
    with pytest.raises(ValueError, match="rule must be one of"):
        W.choose_parent(nouns, dog.offset, "longest")
    with pytest.raises(KeyError, match="unknown noun synset n99999999"):
        W.hypernym_path(nouns, "n99999999")


@pytest.mark.parametrize("rule", W.PARENT_RULES)
def test_wordnet_ontology_matches_paths(fix, rule):
    nouns, to_fix, _, maps = fix
    classes = [to_fix[w] for w in maps["classes"].values()]
    names = [f"class {k}" for k in maps["classes"]]
    onto, leaves = W.wordnet_ontology(nouns, classes, names, rule)
    assert sorted(O.leaf_nodes(onto)) == sorted(leaves)
    assert [onto.names[i] for i in leaves] == names
    assert onto.names[0] == "entity" and onto.parent[0] == -1
    anc = {}  # brute force ancestor sets from the reader's paths
    for c, leaf in zip(classes, leaves):
        path = [W.wnid(o) for o in W.hypernym_path(nouns, c, rule)]
        assert [onto.ids[i] for i in O.ancestors(onto, leaf)] == path
        for k, node in enumerate(path):
            anc[node] = set(path[k:])
    assert set(anc) == set(onto.ids)
    np.testing.assert_array_equal(O.depth(onto), [len(anc[i]) - 1 for i in onto.ids])
    for a in onto.ids:
        for b in onto.ids:
            assert O.is_ancestor(onto, a, b) == (a in anc[b]), (a, b)


@pytest.mark.parametrize("collapse", [False, True])
def test_restrict_spans_the_given_leaves(fix, collapse):
    nouns, to_fix, _, maps = fix
    classes = [to_fix[w] for w in maps["classes"].values()]
    full, _ = W.wordnet_ontology(nouns, classes)
    keep = [to_fix[w] for w in ("n02123045", "n02124075", "n02085620", "n01440764")]
    sub, leaves = O.restrict(full, keep, collapse_unary=collapse)
    assert [sub.ids[i] for i in leaves] == keep
    assert sorted(O.leaf_nodes(sub)) == sorted(leaves)
    routes = {k: [full.ids[i] for i in O.ancestors(full, k)] for k in keep}
    span = set().union(*routes.values())
    kids = {n: {r[j - 1] for r in routes.values() for j in range(1, len(r))
                if r[j] == n} for n in span}  # fmt: skip
    want = span if not collapse else {n for n in span if n in keep or len(kids[n]) > 1}
    assert set(sub.ids) == want
    for k, leaf in zip(keep, leaves):  # each route survives, minus dropped nodes
        assert [sub.ids[i] for i in O.ancestors(sub, leaf)] == [
            n for n in routes[k] if n in want
        ]
    if collapse:
        counts = np.bincount(sub.parent[sub.parent >= 0], minlength=len(sub))
        assert (counts[counts > 0] >= 2).all()
    with pytest.raises(ValueError, match="is an ancestor of leaf"):
        O.restrict(full, [keep[0], to_fix["n02121620"]])
    with pytest.raises(ValueError, match="given twice"):
        O.restrict(full, [keep[0], keep[0]])
    with pytest.raises(KeyError, match="unknown ontology id 'n0'"):
        O.restrict(full, ["n0"])


def test_ontology_rejects_bad_trees():
    names = ("a", "b", "c")
    O.Ontology(names, ("x", "y", "z"), np.array([-1, 0, 1]))
    for parent, msg in [
        ([1, 2, 0], "exactly one -1"),  # no root at all
        ([-1, -1, 0], "exactly one -1"),
        ([-1, 0, 3], r"indices in \[0, 3\)"),
        ([-1, 2, 1], "cycle"),
        ([-1.0, 0, 0], "integer"),
        ([-1, 0], "3 names, 3 ids, 2 parents"),
    ]:
        with pytest.raises(ValueError, match=msg):
            O.Ontology(names, ("x", "y", "z"), np.array(parent))
    with pytest.raises(ValueError, match="'y' repeats"):
        O.Ontology(names, ("x", "y", "y"), np.array([-1, 0, 0]))


def test_concept_bank_and_json_round_trip(tmp_path):
    doc = {"root": {"id": "r", "name": "thing", "children": [
        {"id": "a", "name": "animal", "children": [{"id": "c", "name": "cat"},
                                                   {"id": "d", "name": "dog"}]},
        {"id": "b", "name": "animal", "children": [{"id": "e", "name": "car"}]},
    ]}}  # fmt: skip
    path = tmp_path / "o.json"
    path.write_text(json.dumps(doc))
    onto = O.from_json(path)
    assert onto.ids == ("r", "a", "c", "d", "b", "e")
    np.testing.assert_array_equal(onto.parent, [-1, 0, 1, 1, 0, 4])
    assert O.concept_bank(onto) == ["thing", "animal"]
    assert O.concept_bank(onto, include_leaves=True) == [
        "thing", "animal", "cat", "dog", "car"]  # fmt: skip
    np.testing.assert_array_equal(O.leaf_nodes(onto), [2, 3, 5])
    doc["root"]["children"][1]["children"][0].pop("name")
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"o.json: root.children\[1\]."):
        O.from_json(path)
    doc["root"]["children"][1]["children"][0].update(name="car", id="c")
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="id 'c' repeats"):
        O.from_json(path)
    path.write_text(json.dumps(doc)[:40])
    with pytest.raises(
        DataFormatError, match="o.json: (truncated|invalid) JSON at line 1"
    ):
        O.from_json(path)


def test_synthaerial_taxonomy_covers_the_data_module():
    full, leaves = O.synthaerial_taxonomy("all")
    parent_id = {
        k: full.ids[p] if p >= 0 else None for k, p in zip(full.ids, full.parent)
    }
    for group, concepts in sa.CONCEPT_GROUPS.items():
        assert parent_id[f"group:{group}"] == "objects"
        for c in concepts:
            assert parent_id[f"concept:{c}"] == f"group:{group}"
            for s in sa.SUBCONCEPTS[c]:
                assert parent_id[f"subconcept:{c}/{s}"] == f"concept:{c}"
    assert sorted(sum(sa.CONCEPT_GROUPS.values(), ())) == sorted(sa.CONCEPTS)
    for scene, sup in zip(sa.SCENES, sa.SCENE_SUPER):
        assert parent_id[f"scene:{scene}"] == f"super:{sa.SUPER_CATEGORIES[sup]}"
    assert len(set(full.names)) == len(full)  # a usable concept bank
    assert len(leaves) == 16 + 13 == len(O.leaf_nodes(full))
    sizes = {"scenes": sa.SCENES, "objects": sa.CONCEPTS}
    for classes, keys in sizes.items():
        sub, lv = O.synthaerial_taxonomy(classes)
        assert [sub.ids[i].split(":")[1] for i in lv] == list(keys)
        assert sorted(O.leaf_nodes(sub)) == sorted(lv)
    sub, lv = O.synthaerial_taxonomy("subconcepts", collapse_unary=True)
    assert [sub.names[i] for i in lv[:4]] == [
        "large airplane", "small airplane", "red car", "white car"]  # fmt: skip
    assert "vegetation" not in sub.names  # unary: tree is its only concept
    with pytest.raises(ValueError, match="classes must be one of"):
        O.synthaerial_taxonomy("trees")


def _copy_fixture(tmp_path):
    for name in ("data.noun", "index.noun"):
        shutil.copy(os.path.join(FIX, name), tmp_path / name)
    return tmp_path


def _edit_line(path, lineno, edit):
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    "lineno, edit, msg",
    [
        (40, lambda s: s.replace(b" 0 00", b" 0 xx", 1), "malformed synset fields"),
        (41, lambda s: s.replace(b" @ ", b" @ 1", 1), "malformed pointer"),
        (35, lambda s: s + b"x", "line 36: synset offset .* byte offset"),
        (33, lambda s: s.replace(b" | ", b" ", 1), "expected '<8-digit"),
        (
            42,
            lambda s: s[: s.index(b" | ") - 19] + s[s.index(b" | ") :],
            "line 42: expected 2 > 0 words and 3 pointers",
        ),
        (44, lambda s: s[:40], "line 44: malformed synset fields"),
    ],
)
def test_malformed_data_line_names_file_and_line(tmp_path, lineno, edit, msg):
    d = _copy_fixture(tmp_path)
    _edit_line(d / "data.noun", lineno, edit)
    with pytest.raises(DataFormatError, match=msg) as err:
        W.read_nouns(d)
    assert str(err.value).startswith(str(d / "data.noun"))
    assert f"line {lineno + (lineno == 35)}:" in str(err.value)


def test_dangling_hypernym_and_bad_index(tmp_path):
    d = _copy_fixture(tmp_path)
    _edit_line(d / "data.noun", 31, lambda s: s.replace(b"@ 00001740", b"@ 00001741"))
    with pytest.raises(DataFormatError, match="line 31: hypernym 00001741 of"):
        W.read_nouns(d)
    _edit_line(d / "index.noun", 50, lambda s: s.replace(b" n ", b" n 9 ", 1))
    with pytest.raises(DataFormatError, match=r"index.noun: line 50: malformed"):
        W.read_index(d)


def test_instance_hypernyms_and_dir_resolution(tmp_path, monkeypatch):
    # entity <-@ person <-@i einstein; genius has both @ person and @i einstein.
    syn = [("entity", []), ("person", [("@", 0)]), ("einstein", [("@i", 1)]),
           ("genius", [("@i", 2), ("@", 1)])]  # fmt: skip
    header = "  1 hand-written test synsets  \n"

    def lines(offs):
        return [
            f"{offs[i]:08d} 03 n 01 {w} 0 {len(p):03d}"
            + "".join(f" {s} {offs[j]:08d} n 0000" for s, j in p) + " | g  \n"
            for i, (w, p) in enumerate(syn)
        ]  # fmt: skip

    lens = [len(line) for line in lines([0] * len(syn))]  # fixed-width offsets
    offs = [len(header) + sum(lens[:i]) for i in range(len(syn))]
    text = header + "".join(lines(offs))
    (tmp_path / "data.noun").write_text(text)
    (tmp_path / "index.noun").write_text(f"einstein n 1 1 @i 1 0 {offs[2]:08d}  \n")
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path))
    nouns = W.read_nouns()
    assert nouns[offs[2]].instance_hypernyms == (offs[1],)
    assert W.hypernym_path(nouns, offs[2]) == [offs[2], offs[1], offs[0]]
    assert W.choose_parent(nouns, offs[3], "first") == offs[1]  # @ before @i
    assert W.hypernym_paths(nouns, offs[3]) == [
        [offs[3], offs[1], offs[0]], [offs[3], offs[2], offs[1], offs[0]]]  # fmt: skip
    assert W.read_index() == {"einstein": (offs[2],)}
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere/data.noun .*wordnet-base"):
        W.read_nouns()


@needs_system
def test_wordnet_imagenet():
    wnids, names = W.imagenet_classes()
    assert wnids[0] == "n01440764" and names[281] == "tabby cat"
    onto, leaves = W.wordnet_imagenet(SYSTEM)
    assert leaves.shape == (1000,) and len(set(leaves.tolist())) == 1000
    assert sorted(O.leaf_nodes(onto)) == sorted(leaves)
    assert [onto.ids[i] for i in leaves] == list(wnids)
    assert [onto.names[i] for i in leaves] == list(names)
    root = np.flatnonzero(onto.parent == -1)
    assert root.tolist() == [0] and onto.names[0] == "entity"
    assert [onto.ids[i] for i in O.ancestors(onto, leaves[281])] == [
        w for w, _ in TABBY
    ]
    assert {"feline", "domestic cat", "physical entity"} <= set(O.concept_bank(onto))
    small, lv = W.wordnet_imagenet(SYSTEM, collapse_unary=True)
    counts = np.bincount(small.parent[small.parent >= 0], minlength=len(small))
    assert (counts[counts > 0] >= 2).all() and len(small) < len(onto)
    assert [small.ids[i] for i in lv] == list(wnids)


@needs_system
def test_fixture_regenerates_identically(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_fixture", os.path.join(FIX, "make_fixture.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.make(SYSTEM, tmp_path)
    for name in ("data.noun", "index.noun", "wnids.json"):
        assert (tmp_path / name).read_bytes() == open(
            os.path.join(FIX, name), "rb"
        ).read()
