"""Malformed data files: each loader names the file and what is wrong
(DataFormatError) for truncated or invalid JSON, missing keys, wrong types,
non-UTF-8 text, truncated images, size mismatches, row-count mismatches and
non-finite features; out-of-image geometry is clipped with a counted warning.
Fixtures are written in the real formats; expected masks and standardised
features come from independent NumPy computations."""

import gzip
import json
import pickle
import struct
import warnings

import h5py
import numpy as np
import pytest
from PIL import Image

from jaxcxai.data import captions, classic, coco, duch_h5, voc
from jaxcxai.data.validate import ClippedGeometryWarning, DataFormatError, DataKeyError


def _fails(fn, path, *words, exc=DataFormatError):
    with pytest.raises(exc) as info:
        fn(str(path))
    msg = str(info.value)
    assert str(path) in msg, msg
    if isinstance(info.value, DataFormatError):
        assert info.value.path == str(path)
    for w in words:
        assert w in msg, msg
    return info.value


# ---------------------------------------------------------------- COCO


def _coco(h=6, w=8):
    return {
        "images": [{"id": 7, "file_name": "a.png", "height": h, "width": w}],
        "categories": [{"id": 1, "name": "dog"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [1, 1, 2, 2],
                "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]],
            }
        ],
    }


def _write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_coco_truncated_invalid_and_non_utf8_json(tmp_path):
    text = json.dumps(_coco())
    p = tmp_path / "cut.json"
    p.write_text(text[: len(text) // 2])
    _fails(coco.load_coco, p, "truncated JSON at line 1")
    p.write_text(text.replace('"dog"', "dog"))
    _fails(coco.load_coco, p, "invalid JSON")
    p.write_bytes(text.replace("dog", "d\xf6g").encode("latin-1"))
    _fails(coco.load_coco, p, "not UTF-8", "0xf6")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d["annotations"][0].pop("category_id"), "missing key 'category_id'"),
        (lambda d: d.pop("categories"), "top level: missing key 'categories'"),
        (lambda d: d["images"][0].update(height="6"), "'height' is '6' (str)"),
        (lambda d: d["images"][0].update(width=0), "width must be > 0"),
        (lambda d: d["annotations"][0].update(image_id=True), "expected int"),
        (lambda d: d["annotations"][0].update(category_id=5), "unknown category 5"),
        (lambda d: d["annotations"][0].update(image_id=3), "unknown image 3"),
        (lambda d: d["annotations"][0].update(bbox=[0, 0, -1, 2]), "bbox"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "polygon 0"),
        (lambda d: d["annotations"][0].update(segmentation="x"), "segmentation"),
        (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 7"),
        (
            lambda d: d["annotations"][0].update(
                segmentation={"size": [6, 9], "counts": [54]}
            ),
            "RLE size [6, 9]",
        ),
    ],
)
def test_coco_bad_records(tmp_path, edit, words):
    data = _coco()
    edit(data)
    err = _fails(coco.load_coco, _write_json(tmp_path / "bad.json", data), words)
    assert isinstance(err, ValueError)


def test_coco_image_size_checked_against_the_real_image(tmp_path):
    ann_path = _write_json(tmp_path / "instances.json", _coco(h=6, w=8))
    ann = coco.load_coco(str(ann_path))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(coco.read_image(ann, 7, str(tmp_path)), pixels)
    Image.fromarray(pixels[:, :7]).save(tmp_path / "a.png")  # 6x7, recorded 6x8
    with pytest.raises(DataFormatError) as info:
        coco.read_image(ann, 7, str(tmp_path))
    msg = str(info.value)
    assert str(tmp_path / "a.png") in msg and str(ann_path) in msg
    assert "6x7" in msg and "6x8" in msg
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
        tmp_path / "big.png"
    )
    data = (tmp_path / "big.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated or corrupt image"):
        coco.read_image(ann, 7, str(tmp_path))


def test_coco_geometry_outside_the_image_is_clipped_with_a_counted_warning(tmp_path):
    data = _coco(h=6, w=8)
    inside = dict(data["annotations"][0])
    # A square from (-2, -3) to (3, 2) and a box reaching past the right edge.
    poly = dict(inside, id=12, segmentation=[[-2, -3, 3, -3, 3, 2, -2, 2]])
    poly["bbox"] = [-2, -3, 5, 5]
    box = dict(inside, id=13, bbox=[5, 1, 6, 4])
    data["annotations"] += [poly, box]
    path = _write_json(tmp_path / "clip.json", data)
    with pytest.warns(ClippedGeometryWarning, match="2 annotation") as rec:
        ann = coco.load_coco(str(path))
    assert len(rec) == 1 and str(path) in str(rec[0].message)
    assert ann.clipped == (1, 2)
    # Reference: pixel centres (c + 0.5, r + 0.5) inside the geometry AND the image.
    yc, xc = np.mgrid[0:6, 0:8] + 0.5
    got = coco.annotation_mask(poly, 6, 8)
    np.testing.assert_array_equal(got, (xc < 3) & (yc < 2))
    # Ellipse inscribed in the clipped box [5, 8) x [1, 5): centre (6.5, 3).
    ell = coco.category_masks(ann, 7, [1], variant="ellipse")[1]
    box_ell = ((xc - 6.5) / 1.5) ** 2 + ((yc - 3.0) / 2.0) ** 2 <= 1
    in_ell = ((xc - 2.0) / 1.0) ** 2 + ((yc - 2.0) / 1.0) ** 2 <= 1  # ann 11
    # ann 12's box [-2, 3) x [-3, 2) clipped to [0, 3) x [0, 2): centre (1.5, 1).
    poly_ell = ((xc - 1.5) / 1.5) ** 2 + ((yc - 1.0) / 1.0) ** 2 <= 1
    np.testing.assert_array_equal(ell, box_ell | in_ell | poly_ell)
    # A file with everything inside warns nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            coco.load_coco(str(_write_json(tmp_path / "ok.json", _coco()))).clipped
            == ()
        )


def test_coco_corrupt_rle_names_the_file(tmp_path):
    data = _coco()
    data["annotations"][0]["segmentation"] = {"size": [6, 8], "counts": "X"}
    ann = coco.load_coco(str(_write_json(tmp_path / "rle.json", data)))
    with pytest.raises(DataFormatError, match="rle.json: truncated COCO RLE"):
        coco.category_masks(ann, 7)


# ---------------------------------------------------------------- VOC


def _voc_root(tmp_path, mask_hw, image_hw):
    for d in ("SegmentationClass", "JPEGImages"):
        (tmp_path / d).mkdir()
    mask = np.zeros(mask_hw, np.uint8)
    mask[1:3, 2:4] = 12
    mask[0, 0] = voc.VOID
    voc.write_class_mask(str(tmp_path / "SegmentationClass" / "x.png"), mask)
    Image.new("RGB", image_hw[::-1], (10, 20, 30)).save(
        tmp_path / "JPEGImages" / "x.jpg"
    )
    return mask


def test_voc_mask_and_image_sizes_must_agree(tmp_path):
    mask = _voc_root(tmp_path, (5, 7), (5, 7))
    rgb, got = voc.read_image_and_mask(str(tmp_path), "x")
    np.testing.assert_array_equal(got, mask)
    assert rgb.shape == (5, 7, 3)
    Image.new("RGB", (7, 6)).save(tmp_path / "JPEGImages" / "x.jpg")
    with pytest.raises(DataFormatError) as info:
        voc.read_image_and_mask(str(tmp_path), "x")
    msg = str(info.value)
    assert "SegmentationClass/x.png" in msg and "JPEGImages/x.jpg" in msg
    assert "5x7" in msg and "6x7" in msg


def test_voc_truncated_png_and_bad_values(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "m.png"
    voc.write_class_mask(str(p), rng.integers(0, 21, (40, 50)))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    _fails(voc.read_class_mask, p, "truncated or corrupt image")
    p.write_bytes(b"not a png")
    _fails(voc.read_class_mask, p, "truncated or corrupt image")
    bad = np.zeros((4, 4), np.uint8)
    bad[0, :3] = [21, 50, 50]
    voc.write_class_mask(str(p), bad)
    _fails(voc.read_class_mask, p, "3 pixels hold values [21 50]")
    split = tmp_path / "ImageSets" / "Segmentation"
    split.mkdir(parents=True)
    (split / "val.txt").write_bytes(b"2007_000033\n\xff\xfe\n")
    read_split = lambda p: voc.read_split_ids(str(tmp_path), "val")
    _fails(read_split, split / "val.txt", "not UTF-8")


# ---------------------------------------------------------------- caption JSON


def _captions(n=3, k=2):
    sent = lambda i, j: {"imgid": i, "sentid": k * i + j, "raw": f"a field {j} ."}
    return {
        "dataset": "T",
        "num_classes": 1,
        "classes": {"0": "field"},
        "images": [
            {
                "imgid": i,
                "filename": f"{i}.tif",
                "classcode": 0,
                "classname": "field",
                "split": "train",
                "sentids": [k * i + j for j in range(k)],
                "sentences": [sent(i, j) for j in range(k)],
            }
            for i in range(n)
        ],
    }


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d["images"][1]["sentences"][0].update(raw=""), "image 1 caption 0"),
        (lambda d: d["images"][2]["sentences"][1].update(raw=" . ,"), "empty"),
        (lambda d: d["images"][1]["sentences"][0].pop("raw"), "missing key 'raw'"),
        (lambda d: d["images"][0].update(classcode="0"), "'classcode' is '0' (str)"),
        (lambda d: d["images"][2].pop("split"), "images[2]: missing key 'split'"),
        (lambda d: d["images"][1]["sentences"].pop(), "image 1 has 1 captions"),
        (lambda d: d.update(images={}), "'images' is {} (dict)"),
    ],
)
def test_caption_json_bad_records(tmp_path, edit, words):
    data = _captions()
    edit(data)
    path = _write_json(tmp_path / "caps.json", data)
    _fails(captions.load_caption_json, path, words)


def test_caption_json_encoding_and_truncation(tmp_path):
    p = _write_json(tmp_path / "ok.json", _captions())
    assert captions.load_caption_json(str(p)).flat_captions()[3] == "a field 1 ."
    text = p.read_text()
    p.write_bytes(text.replace("a field 1", "a f\xe9ld 1").encode("latin-1"))
    _fails(captions.load_caption_json, p, "not UTF-8")
    p.write_text(text[:-40])
    _fails(captions.load_caption_json, p, "truncated JSON")


# ---------------------------------------------------------------- DUCH h5


def _h5(path, key, array):
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)


def _feature_files(tmp_path, n=4, k=2, caption_rows=None):
    rng = np.random.default_rng(2)
    paths = duch_h5.feature_paths(str(tmp_path), "T")
    raw = {
        "image": rng.normal(size=(n, 3)),
        "image_aug": rng.normal(size=(n, 3)),
        "caption": rng.normal(size=(caption_rows or k * n, 5)),
        "caption_aug": rng.normal(size=(caption_rows or k * n, 5)),
    }
    for name, arr in raw.items():
        _h5(
            paths[name], "image_emb" if name.startswith("image") else "caption_emb", arr
        )
    return paths, raw


def test_h5_row_counts_checked_against_labels(tmp_path):
    labels = np.arange(4)
    # 12 caption rows = 3 per image: a multiple of N, but the JSON says K = 2,
    # so a reshape would silently scramble the captions.
    paths, _ = _feature_files(tmp_path, caption_rows=12)
    loader = lambda p: duch_h5.load_duch_features(paths, labels, captions_per_image=2)
    _fails(loader, paths["caption"], "12 rows but 2 per image x 4 labels = 8")
    _fails(
        lambda p: duch_h5.load_raw_features(paths, 5),
        paths["image"],
        "4 image rows but 5",
    )
    _h5(paths["image_aug"], "wrong_key", np.zeros((4, 3)))
    err = _fails(
        lambda p: duch_h5.load_raw_features(paths, 4),
        paths["image_aug"],
        "no dataset 'image_emb'",
        exc=DataKeyError,
    )
    assert isinstance(err, KeyError)
    with open(paths["image"], "r+b") as f:
        f.truncate(200)
    _fails(lambda p: duch_h5.load_raw_features(paths, 4), paths["image"], "HDF5")


def test_h5_nan_features_raise_by_default_and_drop_on_request(tmp_path):
    paths, raw = _feature_files(tmp_path)
    raw["image_aug"][1, 2] = np.nan
    raw["caption"][5, 0] = np.inf  # caption row 5 = image 2, caption 1
    _h5(paths["image_aug"], "image_emb", raw["image_aug"])
    _h5(paths["caption"], "caption_emb", raw["caption"])
    labels = np.array([3, 1, 4, 1])
    _fails(
        lambda p: duch_h5.load_duch_features(paths, labels),
        paths["image_aug"],
        "1 non-finite values",
        "first at row 1",
        "nonfinite='drop'",
    )
    _fails(lambda p: duch_h5.read_h5_array(p, "caption_emb"), paths["caption"], "inf")
    with pytest.raises(ValueError, match="nonfinite"):
        duch_h5.load_duch_features(paths, labels, nonfinite="zero")
    with pytest.warns(UserWarning, match="dropped 2 of 4 images"):
        feats = duch_h5.load_duch_features(paths, labels, nonfinite="drop")
    np.testing.assert_array_equal(feats.kept, [0, 3])
    np.testing.assert_array_equal(feats.labels, [3, 1])
    # Reference: drop images 1 and 2 (and caption rows 2..5), then standardise.
    keep_caps = [0, 1, 6, 7]
    for got, x in [
        (feats.images_aug, raw["image_aug"][[0, 3]]),
        (feats.captions, raw["caption"][keep_caps]),
    ]:
        np.testing.assert_allclose(got, (x - x.mean()) / x.std(), rtol=1e-12)
    kept_nan = duch_h5.read_h5_array(paths["image_aug"], "image_emb", nonfinite="keep")
    assert np.isnan(kept_nan[1, 2])
    _h5(paths["image"], "image_emb", np.ones((4, 3)))  # std 0: would give NaN
    with pytest.warns(UserWarning, match="dropped"):
        _fails(
            lambda p: duch_h5.load_duch_features(paths, labels, nonfinite="drop"),
            paths["image"],
            "all values are equal",
        )


# ---------------------------------------------------------------- IDX


def _idx_bytes(array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    return header + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def test_idx_truncated_and_bad_magic(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x.idx"
    raw = _idx_bytes(images)
    p.write_bytes(raw[:-5])
    _fails(classic.read_idx, p, "truncated: header shape (2, 3, 4) needs 24 bytes")
    p.write_bytes(raw[:9])
    _fails(classic.read_idx, p, "header of 3 dimensions needs 16 bytes")
    p.write_bytes(b"\x08\x03" + raw[2:])
    _fails(classic.read_idx, p, "not an IDX file (magic 0803")
    p.write_bytes(raw[:2] + b"\x07" + raw[3:])
    _fails(classic.read_idx, p, "unknown IDX type code 0x07")
    gz = tmp_path / "x.idx.gz"
    gz.write_bytes(gzip.compress(raw)[:-10])
    _fails(classic.read_idx, gz, "corrupt or truncated gzip")


def test_fashion_mnist_label_checks(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    write = lambda name, arr: (tmp_path / name).write_bytes(
        gzip.compress(_idx_bytes(arr))
    )
    write("t10k-images-idx3-ubyte.gz", images)
    write("t10k-labels-idx1-ubyte.gz", np.array([1, 2], np.uint8))
    labels_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    load = lambda p: classic.load_fashion_mnist("test", root=str(tmp_path))
    _fails(load, labels_path, "labels (2,) do not match the 3 images")
    write("t10k-labels-idx1-ubyte.gz", np.array([1, 12, 2], np.uint8))
    _fails(load, labels_path, "1 labels outside 0..9, e.g. [12]")


def test_data_format_error_pickles():
    err = DataKeyError("/x/f.h5", "no dataset 'a'")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is DataKeyError and back.path == "/x/f.h5"
    assert str(back) == "/x/f.h5: no dataset 'a'"
