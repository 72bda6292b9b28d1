"""The Places-layout background folder loader, on small fixture folders."""

import json

import numpy as np
import pytest
from PIL import Image

from jaxcxai.concepts.background import paste, places, pools


def _write_places(root, sizes):
    """root/<category>/<i>.jpg with solid colours (JPEG keeps them near-exact)."""
    colours = {}
    for c, (cat, n) in enumerate(sizes.items()):
        (root / cat).mkdir(parents=True)
        for i in range(n):
            rgb = (40 * c + 20, 10 * i + 50, 200 - 30 * c)
            Image.new("RGB", (40, 30), rgb).save(root / cat / f"{i:03d}.jpg")
            colours[(cat, i)] = rgb
    return colours


def test_places_loader_on_a_fixture_folder(tmp_path):
    root = tmp_path / "places"
    colours = _write_places(root, {"beach": 2, "coast": 1, "street": 2, "attic": 1})
    table = {"at_water": ["beach", "coast"], "road": ["street"]}
    (tmp_path / "groups.json").write_text(json.dumps(table))
    pool = places.load_places_folder(root, tmp_path / "groups.json", size=(24, 24))
    assert pool.group_names == ("at_water", "road")
    assert pool.images.shape == (5, 24, 24, 3)  # attic is not in the table
    np.testing.assert_array_equal(pool.groups, [0, 0, 0, 1, 1])
    assert pool.sources[2].endswith("coast/000.jpg")
    want = np.array([colours[("beach", 0)], colours[("beach", 1)],
                     colours[("coast", 0)], colours[("street", 0)],
                     colours[("street", 1)]])  # fmt: skip
    got = pool.images.reshape(5, -1, 3).mean(1)
    assert np.abs(got - want).max() < 3  # JPEG rounding only
    one = places.load_places_folder(root, table, size=(24, 24), max_per_category=1)
    assert one.images.shape[0] == 3


def test_places_loader_resizes_like_fit_background(tmp_path):
    root = tmp_path / "p"
    (root / "forest").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(
        root / "forest" / "a.png"
    )
    Image.open(root / "forest" / "a.png").save(root / "forest" / "a.jpg", quality=95)
    src = np.asarray(Image.open(root / "forest" / "a.jpg").convert("RGB"))
    pool = places.load_places_folder(root, {"forest": ["forest"]}, size=(20, 20))
    ref = np.asarray(paste.fit_background(src, (20, 20)))
    np.testing.assert_array_equal(pool.images[0], np.clip(np.round(ref), 0, 255))


def test_places_loader_errors_name_the_file_or_key(tmp_path):
    root = tmp_path / "places"
    _write_places(root, {"beach": 1})
    with pytest.raises(FileNotFoundError, match="'street'"):
        places.load_places_folder(root, {"road": ["street"]})
    with pytest.raises(ValueError, match=r"\['road'\]"):
        places.load_places_folder(root, {"road": "street"})
    with pytest.raises(ValueError, match="'beach' is in groups"):
        places.load_places_folder(root, {"a": ["beach"], "b": ["beach"]})
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        places.load_places_folder(root, bad_json)
    (root / "beach" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        places.load_places_folder(root, {"w": ["beach"]})
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        places.load_places_folder(root, {"w": ["empty"]})
    with pytest.raises(FileNotFoundError, match="nowhere"):
        places.load_places_folder(tmp_path / "nowhere", {"w": ["beach"]})
    with pytest.raises(ValueError, match="group 'indoors'"):
        pools.synthaerial_pool(1, size=16).select("indoors")
