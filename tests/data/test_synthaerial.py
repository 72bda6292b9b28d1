"""SynthAerial: determinism, ground truth vs rendered masks, captions, TFDS round trip."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from jaxcxai.data import shapes, tfds_builder
from jaxcxai.data import synthaerial as sa
from jaxcxai.data.scenes import SCENE_SPECS
from jaxcxai.data.textures import ROAD, WATER

CAR, TRUCK, BOAT = (sa.CONCEPTS.index(c) + 1 for c in ("car", "truck", "boat"))


@pytest.fixture(scope="module")
def data():
    return sa.generate(60, size=64, seed=1)


def _instances(d, i):
    for j in range(d["num_objects"][i]):
        yield j, d["instance_mask"][i] == j + 1


def test_constants_and_taxonomy():
    assert len(sa.CONCEPTS) >= 8 and len(sa.SCENES) >= 10 and len(sa.BACKGROUNDS) >= 8
    assert set(sa.SUBCONCEPTS) == set(sa.CONCEPTS)
    assert all(len(v) == 2 for v in sa.SUBCONCEPTS.values())
    assert sa.SCENE_SUPER.shape == (len(sa.SCENES),)
    assert set(sa.SCENE_SUPER.tolist()) == set(range(len(sa.SUPER_CATEGORIES)))
    grouped = [c for g in sa.CONCEPT_GROUPS.values() for c in g]
    assert sorted(grouped) == sorted(sa.CONCEPTS)


def test_deterministic_and_index_local():
    a = sa.generate(10, size=32, seed=3)
    b = sa.generate(10, size=32, seed=3)
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert a[key].tobytes() == b[key].tobytes(), key
    c = sa.generate(10, size=32, seed=4)
    assert not np.array_equal(a["image"], c["image"])
    for i in (0, 7):  # image i alone equals image i inside a batch
        one = sa.generate(1, size=32, seed=3, start=i)
        for key in a:
            assert one[key][0].tobytes() == a[key][i].tobytes(), (i, key)


def test_shapes_and_dtypes(data):
    n, m, k = 60, sa.MAX_OBJECTS, len(sa.CONCEPTS)
    assert data["image"].shape == (n, 64, 64, 3) and data["image"].dtype == np.uint8
    assert data["class_mask"].dtype == np.uint8
    assert data["instance_mask"].dtype == np.int32
    assert data["objects_present"].shape == (n, k)
    assert data["obj_bbox"].shape == (n, m, 4)
    assert data["captions"].shape == (n, 5)
    np.testing.assert_array_equal(data["index"], np.arange(n))


def test_masks_match_object_records(data):
    for i in range(len(data["image"])):
        n = data["num_objects"][i]
        cm, im = data["class_mask"][i], data["instance_mask"][i]
        # Background pixels agree between the two masks; no stray instance ids.
        np.testing.assert_array_equal(cm == 0, im == 0)
        assert set(np.unique(im)) <= set(range(n + 1))
        assert (data["obj_class"][i, n:] == 0).all()
        assert (data["obj_subconcept"][i, n:] == -1).all()
        for j, inst in _instances(data, i):
            assert inst.any()
            assert (cm[inst] == data["obj_class"][i, j]).all()
            ys, xs = np.nonzero(inst)
            tight = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
            np.testing.assert_array_equal(data["obj_bbox"][i, j], tight)
            under = data["background_map"][i][inst]
            mode = np.bincount(under).argmax()
            assert data["obj_background"][i, j] == mode
            if data["obj_class"][i, j] == BOAT:  # whole boat on one background
                assert (under == data["obj_background"][i, j]).all()
                assert data["obj_background"][i, j] in (WATER, ROAD)
        present = set(np.unique(cm[cm > 0]).tolist())
        assert present == {c + 1 for c in np.flatnonzero(data["objects_present"][i])}
        counts = np.bincount(data["obj_class"][i, :n], minlength=len(sa.CONCEPTS) + 1)
        np.testing.assert_array_equal(data["object_counts"][i], counts[1:])


PRIMARY = {  # the base texture each scene is painted on
    "airport": "road",
    "parking_lot": "road",
    "freeway": "grass",
    "harbor": "water",
    "river": "grass",
    "beach": "sand",
    "dense_residential": "urban",
    "sparse_residential": "grass",
    "forest": "forest",
    "farmland": "field",
    "tennis_court": "grass",
    "storage_tanks": "sand",
    "snowfield": "snow",
}


def test_scene_composition(data):
    assert len(set(data["scene"].tolist())) >= 10  # 60 images cover most scenes
    for i, s in enumerate(data["scene"]):
        spec = SCENE_SPECS[s]
        assert data["super_category"][i] == sa.SCENE_SUPER[s]
        primary = sa.BACKGROUNDS.index(PRIMARY[sa.SCENES[s]])
        assert data["background"][i] == primary
        assert (data["background_map"][i] == primary).mean() > 0.2
        for c, cnt in enumerate(data["object_counts"][i], start=1):
            assert cnt <= spec.counts.get(c, (0, 0))[1]


def test_car_truck_differ_only_in_length(data):
    s = 64 / 128
    lengths = {CAR: [], TRUCK: []}
    widths = {CAR: [], TRUCK: []}
    for i in range(len(data["image"])):
        for j, inst in _instances(data, i):
            c = data["obj_class"][i, j]
            if c not in lengths:
                continue
            ys, xs = np.nonzero(inst)
            a = data["obj_angle"][i, j]
            along = (xs + 0.5) * np.cos(a) + (ys + 0.5) * np.sin(a)
            measured = along.max() - along.min() + 1  # pixel-centre extent + 1 px
            assert abs(measured - data["obj_length"][i, j]) <= 1.6
            lengths[c].append(data["obj_length"][i, j])
            widths[c].append(data["obj_width"][i, j])
    assert len(lengths[CAR]) > 20 and len(lengths[TRUCK]) > 3
    assert min(lengths[TRUCK]) > max(lengths[CAR])
    assert 7 * s - 1e-4 <= min(lengths[CAR]) and max(lengths[CAR]) <= 8.5 * s + 1e-4
    assert 14 * s - 1e-4 <= min(lengths[TRUCK]) and max(lengths[TRUCK]) <= 17 * s + 1e-4
    for c in (CAR, TRUCK):  # same width distribution
        assert 3.4 * s - 1e-4 <= min(widths[c]) and max(widths[c]) <= 4.0 * s + 1e-4
    # Same random draws -> identical width and exactly double length.
    car = shapes.sample_dims(np.random.default_rng(5), CAR, 0, 1.0)
    truck = shapes.sample_dims(np.random.default_rng(5), TRUCK, 0, 1.0)
    assert truck[1] == car[1] and truck[0] == 2 * car[0]
    np.testing.assert_array_equal(
        shapes.PALETTES[(CAR, 1)], shapes.PALETTES[(TRUCK, 1)]
    )


def test_subconcepts_rendered(data):
    red, white = [], []
    for i in range(len(data["image"])):
        for j, inst in _instances(data, i):
            if data["obj_class"][i, j] != CAR or inst.sum() < 6:
                continue
            rgb = data["image"][i][inst].astype(float).mean(0) / 255
            (red if data["obj_subconcept"][i, j] == 0 else white).append(rgb)
    red, white = np.array(red), np.array(white)
    assert len(red) > 5 and len(white) > 5
    assert (red[:, 0] - red[:, 1] > 0.25).all()  # red cars are red
    assert (white.min(1) > 0.55).all()  # white cars are bright in every channel
    big = sa.SUBCONCEPTS["airplane"].index("large")
    air = sa.generate(30, size=64, seed=2, scenes=("airport",))
    cls, sub, ln = air["obj_class"], air["obj_subconcept"], air["obj_length"]
    large, small = ln[(cls == 1) & (sub == big)], ln[(cls == 1) & (sub != big)]
    assert len(large) and len(small) and large.min() > small.max()


@pytest.mark.parametrize("p", [0.2, 0.85])
def test_boat_background_correlation(p):
    d = sa.generate(500, size=32, seed=7, boat_on_water_p=p, scenes=("harbor", "river"))
    bg = d["obj_background"][d["obj_class"] == BOAT]
    n = len(bg)
    assert n > 1000
    frac = (bg == WATER).mean()
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.01, (frac, p, n)
    assert set(np.unique(bg).tolist()) <= {WATER, ROAD}


def test_bias_parameter_moves_only_boats():
    kw = dict(size=32, seed=11, scenes=("harbor", "river"))
    a, b = (
        sa.generate(15, boat_on_water_p=1.0, **kw),
        sa.generate(15, boat_on_water_p=0.0, **kw),
    )
    np.testing.assert_array_equal(a["background_map"], b["background_map"])
    for i in range(15):
        keep_a, keep_b = a["obj_class"][i] != BOAT, b["obj_class"][i] != BOAT
        for key in ("obj_class", "obj_bbox", "obj_center"):
            np.testing.assert_array_equal(a[key][i][keep_a], b[key][i][keep_b])
    assert (a["obj_background"][a["obj_class"] == BOAT] == WATER).all()
    assert (b["obj_background"][b["obj_class"] == BOAT] == ROAD).all()


# Independent caption parser: concept -> noun regex (synonyms included).
NOUN_RE = {
    "airplane": r"\b(air)?planes?\b",
    "car": r"\bcars?\b",
    "truck": r"\btrucks?\b",
    "boat": r"\bboats?\b",
    "storage_tank": r"\bstorage tanks?\b",
    "tree": r"\btrees?\b",
    "building": r"\b(buildings?|houses?)\b",
    "tennis_court": r"\btennis courts?\b",
}
PLURAL = {
    "airplane": r"(?:air)?planes",
    "car": "cars",
    "truck": "trucks",
    "boat": "boats",
    "storage_tank": "storage tanks",
    "tree": "trees",
    "building": "(?:buildings|houses)",
    "tennis_court": "tennis courts",
}
NUM = "one two three four five six seven eight nine ten eleven twelve".split()


def test_captions_mention_exactly_present_objects():
    d = sa.generate(80, size=64, seed=5)
    for i in range(80):
        present = {sa.CONCEPTS[c] for c in np.flatnonzero(d["objects_present"][i])}
        counts = dict(zip(sa.CONCEPTS, d["object_counts"][i]))
        assert len(d["captions"][i]) == 5
        for cap in d["captions"][i]:
            assert cap.endswith(" .") and cap[0].isupper()
            said = {c for c, rx in NOUN_RE.items() if re.search(rx, cap)}
            assert said == present, (cap, present)
            # Any explicit "<number> <plural noun>" is the true total count.
            for c in present:
                for m in re.finditer(rf"\b({'|'.join(NUM)}) {PLURAL[c]}\b", cap):
                    assert NUM.index(m.group(1)) + 1 == counts[c], (cap, c)


def test_builder_roundtrip(tmp_path):
    path = tfds_builder.build(str(tmp_path), num_train=12, num_test=4, size=32, seed=2)
    assert os.path.isdir(path)
    for split, start, num in (("train", 0, 12), ("test", 12, 4)):
        src = tfds_builder.load(str(tmp_path), split)
        assert len(src) == num
        got = tfds_builder.to_arrays(src)
        ref = sa.generate(num, size=32, seed=2, start=start)
        assert set(got) == set(ref)
        for key in ref:
            assert got[key].dtype == ref[key].dtype, key
            assert got[key].shape == ref[key].shape, key
            assert got[key].tobytes() == ref[key].tobytes(), key
    with pytest.raises(KeyError, match="validation"):
        tfds_builder.load(str(tmp_path), "validation")


def test_build_script_and_plot(tmp_path):
    from train import build_dataset

    png = str(tmp_path / "preview.png")
    out = build_dataset.main(
        [
            "--out",
            str(tmp_path),
            "--num",
            "6",
            "--num-test",
            "2",
            "--size",
            "32",
            "--preview",
            png,
        ]
    )
    assert len(tfds_builder.load(out, "test")) == 2
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 300
