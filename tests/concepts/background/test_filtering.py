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
