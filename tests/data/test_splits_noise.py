"""DUCH split replication, caption choice, h5 feature loading and CHNR noise,
checked against values from replaying the reference code's CPython `random`
sequence (split indices, caption offsets, noise counts, clean subsets)."""

import os

import h5py
import numpy as np
import pytest

from jaxcxai.data import captions, duch_h5, noise
from tests.paths import FIXTURES

# The real UCM caption file of the hashing reference code (1.7 MB).
UCM_JSON = os.path.join(FIXTURES, "UCM.json")


@pytest.fixture(scope="module")
def ucm_labels():
    return captions.load_caption_json(UCM_JSON).labels


@pytest.mark.parametrize(
    "n, sizes, train10, query10, db5",
    [
        (
            2100,
            (1050, 210, 840),
            [0, 1, 3, 4, 5, 6, 7, 11, 12, 14],
            [9, 15, 34, 38, 57, 62, 86, 97, 115, 137],
            [2, 8, 10, 13, 17],
        ),
        (
            10921,
            (5460, 1092, 4369),
            [1, 5, 6, 8, 9, 10, 11, 14, 17, 18],
            [0, 2, 3, 12, 62, 77, 87, 99, 114, 116],
            [4, 7, 13, 15, 16],
        ),
    ],
)
def test_reference_split(n, sizes, train10, query10, db5):
    split = duch_h5.split_indexes(n)
    assert (len(split.train), len(split.query), len(split.db)) == sizes
    assert split.train[:10].tolist() == train10
    assert split.query[:10].tolist() == query10
    assert split.db[:5].tolist() == db5
    both = np.concatenate([split.train, split.query, split.db])
    np.testing.assert_array_equal(np.sort(both), np.arange(n))  # a partition
    assert (np.diff(split.train) > 0).all() and (np.diff(split.db) > 0).all()


def test_ucm_class_balance(ucm_labels):
    split = duch_h5.split_indexes(2100)
    per_class = lambda idx: np.bincount(ucm_labels[idx], minlength=21)
    assert per_class(split.train).min() == 37 and per_class(split.train).max() == 60
    assert per_class(split.query).min() == 5 and per_class(split.query).max() == 15
    assert per_class(split.db).min() == 32 and per_class(split.db).max() == 52
    # a query's relevant db items (same class), averaged: 40.1
    rel = per_class(split.db)[ucm_labels[split.query]]
    assert round(rel.mean(), 1) == 40.1


def test_caption_choice():
    want = [0, 0, 2, 1, 1, 1, 0, 4, 0, 4, 3, 0, 0, 0, 1, 1, 4, 4, 0, 4]
    assert duch_h5.caption_offsets(20).tolist() == want
    # reseeded per subset: the i-th image of every subset gets the same offset
    split = duch_h5.split_indexes(2100)
    for idx in (split.train, split.query, split.db):
        rows = duch_h5.chosen_caption_rows(idx)
        np.testing.assert_array_equal(rows[:20], 5 * idx[:20] + np.asarray(want))
        assert ((rows - 5 * idx) < 5).all() and ((rows - 5 * idx) >= 0).all()


# p -> (count the reference prints, rows really noisy), UCM (N = 1050)
NOISE_TABLE = {
    0.05: (46, 38),
    0.1: (117, 90),
    0.2: (212, 175),
    0.3: (300, 241),
    0.4: (409, 313),
    0.5: (524, 412),
}


def test_noise_counts_table(ucm_labels):
    train_labels = ucm_labels[duch_h5.split_indexes(2100).train]
    for p, (printed, noisy) in NOISE_TABLE.items():
        out = noise.inject_noise(train_labels, p)
        assert (out.num_replaced, out.num_noisy) == (printed, noisy), p
        n = len(train_labels)
        assert out.always_clean.sum() == 210
        own = np.arange(n)
        # always-clean rows keep their caption; noisy rows take a caption of
        # another class; clean rows point at themselves
        assert (out.source[out.always_clean] == own[out.always_clean]).all()
        assert (train_labels[out.source[out.noisy]] != train_labels[out.noisy]).all()
        np.testing.assert_array_equal(out.noisy, out.replaced & ~out.always_clean)
        np.testing.assert_array_equal(out.offsets[:5], [0, 0, 2, 1, 1])


def test_noise_edge_cases():
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    none = noise.inject_noise(labels, 0.0)
    assert none.num_replaced == 0 and none.num_noisy == 0
    allp = noise.inject_noise(labels, 1.0, clean_fraction=0.0)
    assert allp.num_replaced == 8 and allp.num_noisy == 8
    with pytest.raises(ValueError, match="all labels are equal"):
        noise.inject_noise(np.zeros(5, int), 0.5)
    with pytest.raises(ValueError, match="1-D"):
        noise.inject_noise(np.zeros((2, 3), int), 0.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        noise.inject_noise(labels, 1.5)


def test_clean_subsets():
    ucm_clean = noise.clean_subset(1050, 0.3)
    ucm_always = noise.clean_subset(1050, 0.2)
    assert len(ucm_clean) == 315 and len(ucm_always) == 210
    assert set(ucm_always) <= set(ucm_clean)
    rsicd_clean = noise.clean_subset(5460, 0.2)
    assert len(rsicd_clean) == 1092
    labels = np.arange(1050) % 21
    np.testing.assert_array_equal(
        noise.clean_subset_labels(labels, ucm_clean), labels[:315]
    )
    np.testing.assert_array_equal(
        noise.clean_subset_labels(labels, ucm_clean, faithful=False), labels[ucm_clean]
    )


def _write(path, key, array):
    with h5py.File(path, "w") as f:  # h5py directly: the reference layout
        f.create_dataset(key, data=array)


def test_h5_features_and_subsets(tmp_path, ucm_labels):
    rng = np.random.default_rng(0)
    raw = {
        "image": rng.normal(3.0, 2.0, (2100, 8)).astype(np.float32),
        "image_aug": rng.normal(-1.0, 0.5, (2100, 8)).astype(np.float32),
        "caption": rng.normal(0.5, 4.0, (10500, 6)).astype(np.float32),
        "caption_aug": rng.normal(0.0, 1.0, (10500, 6)).astype(np.float32),
    }
    paths = duch_h5.feature_paths(str(tmp_path), "UCM")
    assert os.path.basename(paths["image"]) == "image_emb_UCM_aug_center_crop_only.h5"
    assert os.path.basename(paths["caption_aug"]) == "caption_emb_UCM_aug_rb.h5"
    for name, arr in raw.items():
        key = "image_emb" if name.startswith("image") else "caption_emb"
        _write(paths[name], key, arr)

    feats = duch_h5.load_duch_features(paths, ucm_labels)
    assert feats.captions_per_image == 5
    for name, got in [("image", feats.images), ("caption_aug", feats.captions_aug)]:
        x = raw[name].astype(np.float64)
        want = (x - x.mean()) / x.std()
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert got.dtype == np.float32

    split = duch_h5.split_indexes(2100)
    train = duch_h5.subset(feats, split.train)
    assert train["img"].shape == (1050, 8) and train["txt"].shape == (1050, 6)
    offsets = duch_h5.caption_offsets(1050)
    i = 3  # the 4th train image
    np.testing.assert_array_equal(train["img_aug"][i], feats.images_aug[split.train[i]])
    np.testing.assert_array_equal(
        train["txt"][i], feats.captions[5 * split.train[i] + offsets[i]]
    )
    np.testing.assert_array_equal(train["labels"], ucm_labels[split.train])

    # errors name the file and the mismatch
    with pytest.raises(ValueError, match="2100 image rows but 7 labels"):
        duch_h5.load_duch_features(paths, np.zeros(7, int))
    _write(paths["caption_aug"], "caption_emb", raw["caption_aug"][:-1])
    with pytest.raises(
        ValueError, match="10499 caption rows is not a multiple of 2100"
    ):
        duch_h5.load_duch_features(paths, ucm_labels)
    os.remove(paths["image_aug"])
    with pytest.raises(FileNotFoundError, match="image_emb_UCM_aug_aug_center.h5"):
        duch_h5.load_duch_features(paths, ucm_labels)
    with pytest.raises(KeyError, match="no dataset 'image_emb'"):
        duch_h5.read_h5_array(paths["caption"], "image_emb")


def test_write_h5_array_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = str(tmp_path / "x.h5")
    duch_h5.write_h5_array(path, "image_emb", a)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["image_emb"][()], a)
    assert os.listdir(tmp_path) == ["x.h5"]  # no temporary left behind
