"""Segmentation metrics against NumPy brute-force loops (float64)."""

import numpy as np
import pytest

from jaxcxai.metrics import segmentation as seg


def _maps(seed=0, k=3, n=4, h=5, w=6):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(size=(k, n, h, w)).astype(np.float32)
    target = (rng.uniform(size=(k, n, h, w)) > 0.6) * rng.uniform(0.2, 1, (k, n, h, w))
    target[0, 1] = 0.0  # an empty label
    pred[0, 1] = 0.1  # ... with an empty prediction: IoU 1 by smoothing
    pred[1, 2, 0, 0] = 0.5  # exactly at the threshold: not positive (strict >)
    pred[2, 3] = 1.0
    return pred, target.astype(np.float32)


def _brute_counts(p, t, th=0.5, lt=0.0):
    inter = union = 0
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            a, b = p[i, j] > th, t[i, j] > lt
            inter += int(a and b)
            union += int(a or b)
    return inter, union


def test_set_sample_and_mean_iou_match_brute_force():
    pred, target = _maps()
    k, n = pred.shape[:2]
    set_ref = np.zeros(k)
    sample_ref = np.zeros((k, n))
    for c in range(k):
        tot_i = tot_u = 0
        for x in range(n):
            i, u = _brute_counts(pred[c, x], target[c, x])
            sample_ref[c, x] = (i + 1e-6) / (u + 1e-6)
            tot_i, tot_u = tot_i + i, tot_u + u
        set_ref[c] = (tot_i + 1e-6) / (tot_u + 1e-6)
    np.testing.assert_allclose(seg.set_iou(pred, target), set_ref, rtol=1e-6)
    np.testing.assert_allclose(seg.sample_iou(pred, target), sample_ref, rtol=1e-6)
    assert seg.sample_iou(pred, target)[0, 1] == pytest.approx(1.0)
    np.testing.assert_allclose(seg.mean_iou(pred, target), set_ref.mean(), rtol=1e-6)


def test_iou_broadcasts_over_runs_and_rejects_bad_shapes():
    pred, target = _maps()
    runs = np.stack([pred, 1.0 - pred], axis=1)  # (K, R=2, N, H, W)
    got = seg.set_iou(runs, target[:, None])
    np.testing.assert_allclose(got[:, 0], seg.set_iou(pred, target), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], seg.set_iou(1.0 - pred, target), rtol=1e-6)
    with pytest.raises(ValueError, match="broadcast|trailing"):
        seg.set_iou(pred, target[:, :, :4])


def test_iou_threshold_curve_matches_loop():
    pred, target = _maps(seed=1)
    ths, curve = seg.iou_threshold_curve(pred, target)
    assert ths.shape == (20,) and float(ths[0]) == 0.0 and float(ths[-1]) == 1.0
    for j, th in enumerate(np.asarray(ths)):
        for c in range(pred.shape[0]):
            i, u = _brute_counts(pred[c].reshape(-1, 1), target[c].reshape(-1, 1), th)
            assert float(curve[c, j]) == pytest.approx(
                (i + 1e-6) / (u + 1e-6), rel=1e-6
            )


@pytest.mark.parametrize("label_threshold", [None, 0.0])
def test_calibration_and_ece_match_loop(label_threshold):
    pred, target = _maps(seed=2)
    bins = 10
    conf, acc, frac = seg.calibration_curve(pred, target, bins, label_threshold)
    ece = seg.expected_calibration_error(pred, target, bins, label_threshold)
    for c in range(pred.shape[0]):
        p = pred[c].reshape(-1).astype(np.float64)
        y = target[c].reshape(-1).astype(np.float64)
        if label_threshold is not None:
            y = (y > label_threshold).astype(np.float64)
        s_p, s_y, cnt = np.zeros(bins), np.zeros(bins), np.zeros(bins)
        for pi, yi in zip(p, y):
            b = min(int(pi * bins), bins - 1)  # p = 1 goes to the last bin
            s_p[b] += pi
            s_y[b] += yi
            cnt[b] += 1
        mc = np.where(cnt > 0, s_p / np.maximum(cnt, 1), 0.0)
        my = np.where(cnt > 0, s_y / np.maximum(cnt, 1), 0.0)
        ref = np.sum(cnt / cnt.sum() * np.abs(my - mc))
        np.testing.assert_allclose(conf[c], mc, atol=1e-6)
        np.testing.assert_allclose(acc[c], my, atol=1e-6)
        np.testing.assert_allclose(frac[c], cnt / cnt.sum(), atol=1e-7)
        assert float(ece[c]) == pytest.approx(ref, abs=1e-6)
    # A perfectly calibrated constant predictor has ECE 0.
    y = (np.arange(40) % 4 == 0).astype(np.float32).reshape(1, 1, 4, 10)
    assert float(seg.expected_calibration_error(np.full_like(y, 0.25), y)[0]) < 1e-7


def test_counts_are_additive_over_chunks():
    pred, target = _maps(seed=3)
    full = seg.iou_counts(pred, target)
    parts = [
        seg.iou_counts(pred[:, s], target[:, s]) for s in (slice(0, 1), slice(1, 4))
    ]
    np.testing.assert_allclose(full[0], parts[0][0] + parts[1][0])
    np.testing.assert_allclose(full[1], parts[0][1] + parts[1][1])
