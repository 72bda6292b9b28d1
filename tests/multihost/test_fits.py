"""Bulk probes, LoCE, DUCH and CHNR: two processes x 4 devices equal one x 8.

Each worker of `workers_fits` runs in both layouts (one `harness.run_jobs`
launch per layout, so the processes start twice in all):

* a bulk Net2Vec fit (3 planted concepts x 2 runs, AdamW) with every
  minibatch sharded over the 8-device mesh;
* bulk CAV fits and a TCAV run, the random runs split over the mesh;
* per-sample LoCE fits sharded over the mesh, directly and into a store;
* one DUCH epoch (train steps and `epoch_end`) over the global batch;
* one CHNR meta-phase epoch then one main-phase epoch (the phases of
  `schedule.phases("chnr", ...)`, run as train/hashing.py runs them on a
  multi-device mesh).

Every host passes the same global inputs; the APIs lay them out over all
hosts' devices. Every host must also return bitwise the same gathered values.

Tolerances (see `test_equal` for the reasoning). Where each device runs the
same program on the same rows and nothing is reduced across devices, the
layouts agree bit for bit: the LoCE fits (each device fits its own 2
samples, no communication) and everything computed from them. Where partial sums cross
devices (the Net2Vec and DUCH gradients, BatchNorm moments, the CAV fits'
common centring shift), the order of the float32 additions differs between
XLA's in-process all-reduce and gloo across processes, so values differ in
the last bits: each array is compared relative to its own scale,
|a - b| <= REL * max|b|. REL = 1e-5 allows the last-bit differences to grow
over a few optimizer steps (observed at most 9.4e-7, the CAV directions
after 50 L-BFGS iterations; Net2Vec 1.5e-7); a host feeding the
wrong rows or a missing cross-host reduction moves values by 1e-3 of the
scale or more. Two DUCH arrays are ill-conditioned: the discriminator's
first bias feeds a BatchNorm, which cancels it, so its gradient is zero up to
rounding and Adam turns that noise into steps of up to the learning rate
(observed: 3e-4 apart after 2 steps); it and the BatchNorm running mean it
shifts are compared to within two Adam steps per update (opposite signs).
Everything else in DUCH agrees to 1e-6 of its scale. CHNR has no such
array: its noise detector D_N has no BatchNorm, and the hash nets' first
biases, which BatchNorm cancels, get an exact zero gradient from the
hand-written backward (`hashing.multiview`), so only the coupled weight
decay moves them (Adam makes steps of about lr of its gradient w p), an
elementwise update of equal values: they agree bit for bit and are compared
exactly (rounding noise added to that gradient would show). Every other
CHNR array is within REL of its scale (observed at most 2.4e-7, the image
net's BatchNorm bias, whose scale is only the 5e-3 that six Adam steps
moved it; codes, BatchNorm statistics, D_N and the losses 2.1e-7 or less;
the meta threshold bit for bit). Adding 1e-3 to one host's standardised
images puts 15 hash-net arrays (codes, BatchNorm, weights) 3.6e-5 to
8.9e-3 of their scale apart, but D_N, its loss, the threshold and the step
losses only up to 6.5e-6: two D_N Adam steps of lr 1e-4 are nearly sign
steps, so those comparisons guard against gross errors only.
Integer-valued results (target codes, TCAV scores as counts of signs,
CHNR's noisy-pair mask and the meta sums reset by the meta phase's
`epoch_end`) are compared exactly.
"""

import numpy as np
import pytest

from tests.multihost import harness

WORKERS = "tests.multihost.workers_fits"
ONE = {"num_processes": 1, "devices_per_process": 8}
TWO = {"num_processes": 2, "devices_per_process": 4}
REL = 1e-5  # of each array's max |value|; see the module docstring

NET2VEC = {"seed": 0, "n": 64, "channels": 16, "concepts": 3, "runs": 2,
           "epochs": 3, "batch_size": 16}  # fmt: skip
CAVS = {"seed": 0, "concepts": 3, "randoms": 6, "n": 10, "dim": 32, "num_class": 4}
LOCE = {"seed": 0, "n": 12, "channels": 16, "grid": 16, "steps": 20}
DUCH = {"seed": 0, "num_train": 32, "batch_size": 16, "bits": 16, "hidden": 32,
        "image_dim": 24, "text_dim": 20}  # fmt: skip
# Arrays driven by rounding noise (module docstring). The discriminator's
# Adam (lr = DuchHyper.disc_lr = 1e-4, b1 = 0.5, b2 = 0.9) moves a coordinate
# by at most 1.04 lr per update in the first two steps (sqrt(sum a_i^2 / b_i)
# of the bias-corrected moment weights), one update per DUCH step; two runs
# whose noise has opposite signs drift apart by up to twice that.
DUCH_NOISY = ("params/disc/fc1/dense/bias", "batch_stats/disc/bn/mean")
DUCH_NOISY_ATOL_PER_STEP = 2 * 1.04 * 1e-4
# 128 rows, 64 of them training rows (half with another row's caption), a
# clean subset of 32: 2 meta steps, then 4 main steps, every batch sharded.
CHNR = {"seed": 0, "n": 128, "classes": 4, "captions": 3, "batch_size": 16,
        "bits": 16, "hidden": 32, "image_dim": 24, "text_dim": 20,
        "noise_prob": 0.5, "clean_fraction": 0.5}  # fmt: skip
# Compared exactly (module docstring): signs, a mask, reset sums, and the
# hash nets' first biases (zero gradient by construction).
CHNR_EXACT = ("batch_stats/codes/target", "noisy", "params/img/fc1/dense/bias",
              "params/txt/fc1/dense/bias")  # fmt: skip


def _run(jobs, layout):
    """Each job's result in one launch of `layout` (hosts checked equal)."""
    # A hang guard: one launch runs every job, 2 to 3 minutes on a loaded
    # 2-core machine (about one of them the CHNR job, mostly compiling).
    return harness.run_agreed(WORKERS, jobs, layout, timeout_s=420)


def _close(a, b, key, rel=REL):
    """`a` within `rel` of `b`'s scale (max |b|)."""
    atol = rel * float(np.abs(b).max())
    np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every worker, in one launch per layout (each its own store folder)."""
    store = tmp_path_factory.mktemp("loce_store")
    names = ("net2vec_fit", "cav_fits", "loce_fit", "duch_epoch", "chnr_epochs")

    def jobs(layout):
        loce_args = dict(LOCE, store_dir=str(store / layout))
        args = (NET2VEC, CAVS, loce_args, DUCH, CHNR)
        return list(zip(names, args))

    one = _run(jobs("one"), ONE)
    two = _run(jobs("two"), TWO)
    return {name: (o, t) for name, o, t in zip(names, one, two)}


def test_net2vec_bulk_fit_two_hosts_equals_one_host(runs):
    one, two = runs["net2vec_fit"]
    k, r, c = NET2VEC["concepts"], NET2VEC["runs"], NET2VEC["channels"]
    assert one["w"].shape == (k, r, c) and one["b"].shape == (k, r)
    steps = NET2VEC["epochs"] * NET2VEC["n"] // NET2VEC["batch_size"]
    assert one["loss"].shape == (steps,)
    for key in ("w", "b", "loss"):
        _close(two[key], one[key], key)
    # Not a trivial fit: every probe learned its planted concept (chance:
    # 0.5), on the same pixels in both layouts.
    assert one["loss"][-1] < 0.5 * one["loss"][0]
    assert one["acc"].min() > 0.75
    _close(two["acc"], one["acc"], "acc")


def test_cav_fits_and_tcav_two_hosts_equal_one_host(runs):
    one, two = runs["cav_fits"]
    k, r, d = CAVS["concepts"], CAVS["randoms"], CAVS["dim"]
    assert one["cavs/weight"].shape == (k, r, d)
    assert one["cavs/bias"].shape == (k, r)
    for key in ("cavs/direction", "cavs/weight", "cavs/bias"):
        _close(two[key], one[key], key)
    # Scores count signs of derivatives (none near 0 here): exactly equal,
    # and so are the significance values the same NumPy code derives.
    tcav_keys = sorted(k for k in one if k.startswith("tcav/"))
    assert {"tcav/scores", "tcav/random_scores"} <= set(tcav_keys)
    for key in tcav_keys:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    assert one["tcav/scores"].shape == (k, r)
    assert one["tcav/random_scores"].shape == (r - 1,)
    # The concept clouds are shifted: every CAV separates its concept from
    # its random set (training accuracy, NumPy on the gathered weights).
    assert one["cavs/acc"].min() > 0.9
    np.testing.assert_array_equal(two["cavs/acc"], one["cavs/acc"])


def test_loce_fits_two_hosts_equal_one_host_exactly(runs):
    one, two = runs["loce_fit"]
    assert one["loce"].shape == (LOCE["n"], LOCE["channels"])
    for key in ("loce", "store/loce", "store/iou"):
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    # Two hosts shared one store directory: process 0 wrote it, both read
    # the consolidated results, and nothing else is left there.
    assert list(two["store/files"]) == ["meta.json", "results.npz"]
    # The store fits chunk i with fold_in(key, i), fit_sharded with key:
    # different inits, so only the shapes and the fit quality are shared.
    assert one["store/loce"].shape == one["loce"].shape
    # The fits reconstruct the planted soft masks (not a degenerate fit).
    assert one["store/iou"].mean() > 0.3 and one["store/iou"].min() > 0.15
    assert np.abs(one["loce"]).max() > 0.1


def test_duch_epoch_two_hosts_equals_one_host(runs):
    one, two = runs["duch_epoch"]
    steps = DUCH["num_train"] // DUCH["batch_size"]
    assert one["loss"].shape == (steps,)
    keys = sorted(k for k in one if k.startswith(("params/", "batch_stats/")))
    assert len(keys) > 20 and set(DUCH_NOISY) <= set(keys)
    for key in keys + ["loss"]:
        if key == "batch_stats/codes/target":
            np.testing.assert_array_equal(two[key], one[key], err_msg=key)
        elif key in DUCH_NOISY:
            atol = DUCH_NOISY_ATOL_PER_STEP * steps
            np.testing.assert_allclose(
                two[key], one[key], rtol=0, atol=atol, err_msg=key
            )
        else:
            _close(two[key], one[key], key)
    # Every training row's buffers were written once (the epoch covers all
    # rows), and the target codes are signs.
    assert (np.abs(one["batch_stats/codes/img1"]).min(axis=1) > 0).all()
    assert set(np.unique(one["batch_stats/codes/target"])) <= {-1.0, 1.0}


def test_chnr_epochs_two_hosts_equal_one_host(runs):
    one, two = runs["chnr_epochs"]
    train = CHNR["n"] // 2
    meta_steps = int(CHNR["clean_fraction"] * train) // CHNR["batch_size"]
    main_steps = train // CHNR["batch_size"]
    assert one["loss"].shape == (meta_steps + main_steps,)
    assert one["det_loss"].shape == (meta_steps,)
    keys = sorted(k for k in one if k.startswith(("params/", "batch_stats/")))
    assert len(keys) > 30 and any(k.startswith("params/disc/") for k in keys)
    assert "batch_stats/meta/threshold" in keys
    assert set(CHNR_EXACT) - {"noisy"} <= set(keys)
    meta_sums = [k for k in keys if k.startswith("batch_stats/meta/")]
    meta_sums.remove("batch_stats/meta/threshold")
    for key in keys + ["loss", "det_loss", "noisy"]:
        if key in CHNR_EXACT or key in meta_sums:
            np.testing.assert_array_equal(two[key], one[key], err_msg=key)
        else:
            _close(two[key], one[key], key)
    # Both phases ran: the meta epoch set the detector's threshold from its
    # probabilities (0.5 before) and reset its sums; the main epoch wrote
    # every training row's buffers; B holds signs; some pairs are noisy.
    assert one["batch_stats/meta/threshold"] != 0.5
    for key in meta_sums:
        assert one[key] == 0, key
    assert (np.abs(one["batch_stats/codes/img1"]).min(axis=1) > 0).all()
    assert set(np.unique(one["batch_stats/codes/target"])) <= {-1.0, 1.0}
    assert 0 < one["noisy"].sum() < train
