"""Loaders for COCO, VOC, the caption JSON and the classic image sets, checked
on hand-computed masks, hand-encoded RLE strings, fixtures written in the true
formats, and the real UCM caption file."""

import collections
import gzip
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from jaxcxai.data import captions, classic, coco, coco_rle, voc
from tests.paths import FIXTURES

# The real UCM caption file of the hashing reference code (1.7 MB).
UCM_JSON = os.path.join(FIXTURES, "UCM.json")

# ---------------------------------------------------------------- COCO RLE


def test_rle_hand_cases_column_major():
    # 3x4 mask, counts [2, 3, 7]: flat (column-major) pixels 2, 3, 4 are set,
    # i.e. (row 2, col 0), (row 0, col 1), (row 1, col 1).
    want = np.zeros((3, 4), bool)
    want[2, 0] = want[0, 1] = want[1, 1] = True
    np.testing.assert_array_equal(coco_rle.rle_decode([2, 3, 7], 3, 4), want)
    assert coco_rle.rle_encode(want) == [2, 3, 7]
    # A mask starting with a set pixel begins with an empty zero run.
    assert coco_rle.rle_encode(np.ones((2, 2), bool)) == [0, 4]
    with pytest.raises(ValueError, match="sum to 11"):
        coco_rle.rle_decode([2, 3, 6], 3, 4)


@pytest.mark.parametrize(
    "counts, string",
    [
        # 3 -> '3'; 2 -> '2'; 40 = 8 + 1*32 -> chr(48+8+32) 'X', then '1';
        # index 3 stores 5 - counts[1] = 3 -> '3'
        ([3, 2, 40, 5], "32X13"),
        # index 3 stores 2 - 10 = -8: low 5 bits 24 (sign bit set), rest -1 -> 'H'
        ([0, 10, 5, 2], "0:5H"),
        # 16 has bit 4 set, so it needs a continuation char: '`' (48+16+32), '0'
        ([16], "`0"),
    ],
)
def test_compressed_rle_hand_encoded(counts, string):
    assert coco_rle.counts_to_string(counts) == string
    assert coco_rle.counts_from_string(string) == counts


def test_compressed_rle_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for trial in range(30):
        h, w = rng.integers(1, 40, size=2)
        density = rng.random()
        mask = rng.random((h, w)) < density
        if trial % 3 == 0:  # blobby masks give long runs and negative deltas
            mask = np.cumsum(rng.random((h, w)) < 0.05, axis=0) % 2 == 1
        counts = coco_rle.rle_encode(mask)
        assert sum(counts) == h * w
        string = coco_rle.counts_to_string(counts)
        assert all(48 <= ord(c) < 112 for c in string)
        assert coco_rle.counts_from_string(string) == counts
        rle = {"size": [int(h), int(w)], "counts": string}
        np.testing.assert_array_equal(coco_rle.rle_to_mask(rle), mask)


def test_compressed_rle_bad_strings():
    with pytest.raises(ValueError, match="truncated"):
        coco_rle.counts_from_string("X")  # continuation bit set, nothing follows
    with pytest.raises(ValueError, match="invalid"):
        coco_rle.counts_from_string("3 ")


# ---------------------------------------------------------------- COCO polygons / file


def test_square_polygon_covers_exact_pixels():
    mask = coco.polygon_mask([2, 1, 6, 1, 6, 4, 2, 4], 8, 10)
    want = np.zeros((8, 10), bool)
    want[1:4, 2:6] = True  # centers in [2, 6) x [1, 4)
    np.testing.assert_array_equal(mask, want)


def test_polygon_matches_point_in_polygon_at_pixel_centers():
    path_mod = pytest.importorskip("matplotlib.path")
    rng = np.random.default_rng(1)
    h, w = 23, 31
    yy, xx = np.mgrid[0:h, 0:w]
    centers = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    for _ in range(10):
        # random star-shaped polygon with non-integer vertices
        ang = np.sort(rng.uniform(0, 2 * np.pi, 7))
        rad = rng.uniform(3, 12, 7)
        pts = np.stack([15.3 + rad * np.cos(ang), 11.7 + rad * np.sin(ang)], 1)
        want = path_mod.Path(pts).contains_points(centers).reshape(h, w)
        np.testing.assert_array_equal(coco.polygon_mask(pts.ravel(), h, w), want)


def _coco_fixture(tmp_path):
    h, w = 6, 8
    dog_mask = np.zeros((h, w), bool)
    dog_mask[4:6, 5:8] = True
    crowd = np.zeros((h, w), bool)
    crowd[0:2, 6:8] = True
    data = {
        "images": [
            {"id": 7, "file_name": "b.jpg", "height": h, "width": w},
            {"id": 3, "file_name": "a.jpg", "height": h, "width": w},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            # two-part polygon instance: union of both squares
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [0, 0, 4, 4],
                "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2], [3, 3, 4, 3, 4, 4, 3, 4]],
            },
            # crowd person as uncompressed RLE
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 1,
                "bbox": [6, 0, 2, 2],
                "segmentation": {"size": [h, w], "counts": coco_rle.rle_encode(crowd)},
            },
            # dog as compressed RLE
            {
                "id": 3,
                "image_id": 7,
                "category_id": 18,
                "iscrowd": 0,
                "bbox": [5, 4, 3, 2],
                "segmentation": {
                    "size": [h, w],
                    "counts": coco_rle.counts_to_string(coco_rle.rle_encode(dog_mask)),
                },
            },
            {
                "id": 4,
                "image_id": 3,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [1, 1, 2, 2],
                "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]],
            },
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return str(path), dog_mask, crowd


def test_coco_category_masks_and_variants(tmp_path):
    path, dog_mask, crowd = _coco_fixture(tmp_path)
    ann = coco.load_coco(path)
    person, dog = coco.category_ids(ann, ["person", "dog"])
    masks = coco.category_masks(ann, 7)
    want_person = crowd.copy()
    want_person[0:2, 0:2] = True
    want_person[3, 3] = True
    np.testing.assert_array_equal(masks[person], want_person)
    np.testing.assert_array_equal(masks[dog], dog_mask)

    rect = coco.category_masks(ann, 7, [person], variant="rectangle")[person]
    want_rect = np.zeros((6, 8), bool)
    want_rect[0:4, 0:4] = True  # bbox of the non-crowd instance; crowd skipped
    np.testing.assert_array_equal(rect, want_rect)

    ell = coco.category_masks(ann, 7, [person], variant="ellipse")[person]
    # inscribed in the 4x4 box: all but the 4 corner pixels, whose centers
    # satisfy (1.5/2)^2 + (1.5/2)^2 = 1.125 > 1
    want_ell = want_rect.copy()
    want_ell[[0, 0, 3, 3], [0, 3, 0, 3]] = False
    np.testing.assert_array_equal(ell, want_ell)

    # a requested category absent from the image gets an empty mask
    assert not coco.category_masks(ann, 3, [dog])[dog].any()
    assert coco.images_with_category(ann, person) == [3, 7]  # sorted by file name
    assert coco.images_with_category(ann, person, limit=1) == [3]
    assert coco.images_with_category(ann, dog) == [7]


def test_coco_errors(tmp_path):
    path, _, _ = _coco_fixture(tmp_path)
    ann = coco.load_coco(path)
    with pytest.raises(KeyError, match="unknown COCO categories \\['cat'\\].*dog"):
        coco.category_ids(ann, ["dog", "cat"])
    with pytest.raises(ValueError, match="unknown mask variant"):
        coco.category_masks(ann, 7, variant="blob")
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        coco.load_coco(missing)
    with pytest.raises(ValueError, match="x, y pairs"):
        coco.polygon_mask([0, 0, 4, 0, 4], 6, 8)
    bad = {"id": 9, "segmentation": {"size": [3, 3], "counts": [9]}}
    with pytest.raises(ValueError, match="differs from the image size"):
        coco.annotation_mask(bad, 6, 8)


# ---------------------------------------------------------------- VOC


def test_voc_palette_png_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    idx = rng.choice([0, 1, 12, 15, 255], size=(9, 11)).astype(np.uint8)
    # written with PIL directly, as the VOC files are: mode "P" + palette
    img = Image.frombytes("P", (11, 9), idx.tobytes())
    img.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    img.save(tmp_path / "2007_000032.png")
    got = voc.read_class_mask(str(tmp_path / "2007_000032.png"))
    np.testing.assert_array_equal(got, idx)

    masks, void = voc.class_binary_masks(got, ["dog", "person", 1])
    np.testing.assert_array_equal(masks[0], idx == 12)
    np.testing.assert_array_equal(masks[1], idx == 15)
    np.testing.assert_array_equal(masks[2], idx == 1)
    np.testing.assert_array_equal(void, idx == 255)
    all_masks, _ = voc.class_binary_masks(got)
    assert all_masks.shape == (20, 9, 11) and not (all_masks & void).any()

    voc.write_class_mask(str(tmp_path / "w.png"), idx)
    with Image.open(tmp_path / "w.png") as im:
        assert im.mode == "P"
        pal = np.asarray(im.getpalette()[: 256 * 3]).reshape(256, 3)
    # the standard VOC colours: aeroplane dark red, person, void cream
    assert tuple(pal[1]) == (128, 0, 0)
    assert tuple(pal[15]) == (192, 128, 128)
    assert tuple(pal[255]) == (224, 224, 192)
    np.testing.assert_array_equal(voc.read_class_mask(str(tmp_path / "w.png")), idx)


def test_voc_errors(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="mode 'RGB'"):
        voc.read_class_mask(str(tmp_path / "rgb.png"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        voc.read_class_mask(str(tmp_path / "missing.png"))
    with pytest.raises(KeyError, match="unknown VOC class 'capybara'"):
        voc.class_binary_masks(np.zeros((2, 2), np.uint8), ["capybara"])
    split_dir = tmp_path / "ImageSets" / "Segmentation"
    split_dir.mkdir(parents=True)
    (split_dir / "val.txt").write_text("2007_000033\n2007_000042\n")
    assert voc.read_split_ids(str(tmp_path), "val") == ["2007_000033", "2007_000042"]
    assert len(voc.VOC_CLASSES) == 21


# ---------------------------------------------------------------- caption JSON


def test_ucm_caption_json():
    ds = captions.load_caption_json(UCM_JSON)
    assert ds.name == "UCM" and ds.num_images == 2100 and ds.captions_per_image == 5
    assert len(ds.class_names) == 21
    assert ds.class_names[0] == "agricultural" and ds.class_names[20] == "tenniscourt"
    assert collections.Counter(ds.labels.tolist()) == {c: 100 for c in range(21)}
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(21), 100))
    assert ds.filenames[0] == "1.tif" and ds.filenames[2099] == "2100.tif"
    assert collections.Counter(ds.splits) == {"train": 1680, "val": 210, "test": 210}
    # Per class the file is close to, not exactly, 80/10/10: every class has
    # 10 test images and 77-81 train images.
    split_arr = np.asarray(ds.splits).reshape(21, 100)
    assert ((split_arr == "test").sum(1) == 10).all()
    n_train = (split_arr == "train").sum(1)
    assert n_train.min() == 77 and n_train.max() == 81
    assert len(ds.split_indices("val")) == 210
    flat = ds.flat_captions()
    assert len(flat) == 10500 and len(set(flat)) == 2032
    assert flat[0] == "There is a piece of farmland ."
    assert flat[5 * 7 + 3] == ds.captions[7][3]
    assert captions.clean_caption(flat[0]) == "there is a piece of farmland "


def test_caption_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        captions.load_caption_json(str(tmp_path / "nothere.json"))
    sent = lambda i, k: {"imgid": i, "sentid": 2 * i + k, "raw": "a b ."}
    rec = lambda i: {
        "imgid": i,
        "filename": f"{i + 1}.tif",
        "classcode": 0,
        "classname": "x",
        "split": "train",
        "sentids": [2 * i, 2 * i + 1],
        "sentences": [sent(i, 0), sent(i, 1)],
    }
    data = {
        "dataset": "T",
        "num_classes": 1,
        "classes": {"0": "x"},
        "images": [rec(0), rec(1)],
    }
    good = tmp_path / "ok.json"
    good.write_text(json.dumps(data))
    assert captions.load_caption_json(str(good)).captions_per_image == 2
    data["images"][1]["imgid"] = 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="imgid=5"):
        captions.load_caption_json(str(bad))
    with pytest.raises(ValueError, match="unknown split"):
        captions.load_caption_json(str(good)).split_indices("holdout")


# ---------------------------------------------------------------- IDX / classic


def _write_idx_by_hand(path, array, code):
    """IDX written with struct, independent of `classic.write_idx`."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + payload)


def test_fashion_mnist_from_idx_gz(tmp_path):
    rng = np.random.default_rng(3)
    for split, prefix, n in [("train", "train", 6), ("test", "t10k", 4)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx_by_hand(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, 0x08)
        _write_idx_by_hand(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels, 0x08)
        x, y = classic.load_fashion_mnist(split, root=str(tmp_path))
        assert x.shape == (n, 28, 28, 1) and x.dtype == np.float32
        np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y, labels)
        assert y.dtype == np.int32
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        classic.load_fashion_mnist("train", root=str(tmp_path / "empty"))


def test_idx_dtypes_and_errors(tmp_path):
    a = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    _write_idx_by_hand(tmp_path / "a.gz", a, 0x0B)
    np.testing.assert_array_equal(classic.read_idx(str(tmp_path / "a.gz")), a)
    f = np.linspace(-1, 1, 10).astype(np.float32).reshape(2, 5)
    classic.write_idx(str(tmp_path / "f.idx"), f)
    raw = (tmp_path / "f.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0D, 2]) and struct.unpack(">II", raw[4:12]) == (
        2,
        5,
    )
    np.testing.assert_array_equal(classic.read_idx(str(tmp_path / "f.idx")), f)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX file"):
        classic.read_idx(str(tmp_path / "bad.idx"))
    (tmp_path / "short.idx").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x05")
    with pytest.raises(ValueError, match="needs 5 bytes"):
        classic.read_idx(str(tmp_path / "short.idx"))


def test_sklearn_image_sets():
    skd = pytest.importorskip("sklearn.datasets")
    x, y = classic.load_sklearn_images("digits")
    ref = skd.load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], ref.images / 16.0, rtol=1e-6)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(y, ref.target)
    photos, ids = classic.load_sklearn_images("sample_images")
    assert photos.shape == (2, 427, 640, 3) and 0 <= photos.min() and photos.max() <= 1
    np.testing.assert_array_equal(ids, [0, 1])
    with pytest.raises(ValueError, match="unknown scikit-learn image set"):
        classic.load_sklearn_images("olivetti")
