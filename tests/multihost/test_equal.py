"""Two processes x 4 devices compute what one process x 8 devices computes.

Each worker of `workers` runs in both layouts (a module-scoped fixture starts
three launches in all; the tests compare their results):

* training: Adam steps of `SmallCNN` with the repo's trainer, data-parallel
  over the 8-device mesh, each host feeding its `host_slice` of the batch;
* checkpoints: written collectively by Orbax (`checkpoint.Checkpointer`) in
  one layout and resumed in the other;
* retrieval: hash codes, Hamming distances and top-k over a database sharded
  across hosts, then mAP@K and `hamming_topk`.

Tolerances. Both layouts run the same partitioned program on 8 devices; the
only difference is who adds up the cross-device partial sums (gradients,
BatchNorm moments): XLA's in-process all-reduce, or gloo across processes,
each in its own order. Float32 addition is not associative, so training
results differ in the last bits. Each array is compared relative to its own
scale: |a - b| <= REL * max|b|, with REL = 2e-6, 8 to 16 float32 ulps of
the array's largest value. Observed after 4 Adam steps: at most 3.7e-7 of
the scale (Adam's second moments; 1.2e-7 for parameters, 2e-7 for the
loss). An absolute tolerance would say nothing about the second moments
(~1e-4) or BatchNorm means (~1e-3); a real error (a host feeding the wrong
rows, a reduction missing between hosts) moves values by 1e-3 of the scale
or more. Everything else is compared exactly: restored checkpoints are bit
copies, integer codes, distances and indices have no rounding, and the mAP
values come from the same NumPy code on identical gathered codes.
"""

import numpy as np
import pytest

from tests.multihost import harness

WORKERS = "tests.multihost.workers"
ONE = {"num_processes": 1, "devices_per_process": 8}
TWO = {"num_processes": 2, "devices_per_process": 4}
REL = 2e-6  # of each array's max |value|; see the module docstring
STEPS, SAVE_AT = 4, 2


def _run(jobs, layout):
    """Each job's result in one launch of `layout` (hosts checked equal)."""
    return harness.run_agreed(WORKERS, jobs, layout, timeout_s=180)


def _assert_close(a, b, prefix):
    """Every `prefix` array of `a` within REL of its scale of `b`'s."""
    keys = sorted(k for k in a if k.startswith(prefix))
    assert keys, f"no '{prefix}' entries"
    assert keys == sorted(k for k in b if k.startswith(prefix))
    for key in keys:
        atol = REL * float(np.abs(b[key]).max())
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


def _assert_equal(a, b, prefix):
    keys = sorted(k for k in a if k.startswith(prefix))
    assert keys, f"no '{prefix}' entries"
    for key in keys:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every job, in three launches (processes start once per launch):

    1 x 8: train, saving at SAVE_AT; retrieval.
    2 x 4: train, saving at SAVE_AT; retrieval; resume launch 1's checkpoint.
    1 x 8: resume launch 2's checkpoint.
    """
    shared = tmp_path_factory.mktemp("multihost_ckpt")  # every host's workdir
    train = {"seed": 0, "steps": STEPS, "save_at": SAVE_AT}
    resume = {"seed": 0, "steps": STEPS, "resume_step": SAVE_AT}
    search = {
        "seed": 0,
        "num_db": 96,
        "num_queries": 12,
        "dim": 16,
        "bits": 32,
        "k": 7,
    }
    one, one_retrieval = _run(
        [
            ("train_classifier", {**train, "ckpt_dir": str(shared / "one")}),
            ("retrieval_eval", search),
        ],
        ONE,
    )
    two, two_retrieval, two_from_one = _run(
        [
            ("train_classifier", {**train, "ckpt_dir": str(shared / "two")}),
            ("retrieval_eval", search),
            ("train_classifier", {**resume, "resume_dir": str(shared / "one")}),
        ],
        TWO,
    )
    (one_from_two,) = _run(
        [("train_classifier", {**resume, "resume_dir": str(shared / "two")})], ONE
    )
    return {
        "one": one,
        "two": two,
        "two_from_one": two_from_one,
        "one_from_two": one_from_two,
        "retrieval": (one_retrieval, two_retrieval),
    }


def test_training_two_hosts_equals_one_host(runs):
    one, two = runs["one"], runs["two"]
    assert int(one["step"]) == int(two["step"]) == STEPS
    assert one["loss"].shape == (STEPS,)
    for prefix in ("loss", "mid/", "params/", "batch_stats/"):
        _assert_close(two, one, prefix)
    # The steps changed the parameters, so equality is not trivially of inits.
    moved = [np.abs(one[k] - one[f"mid/{k}"]).max() for k in one if k[:7] == "params/"]
    assert max(moved) > 1e-3


def test_checkpoint_from_one_host_resumes_on_two(runs):
    saved, resumed = runs["one"], runs["two_from_one"]
    # Params, BatchNorm statistics and Adam moments restored bit for bit.
    _assert_equal(resumed, saved, "mid/")
    assert resumed["loss"].shape == (STEPS - SAVE_AT,)
    # Resuming = the uninterrupted run (both layouts' straight runs).
    _assert_close({"loss": resumed["loss"]}, {"loss": saved["loss"][SAVE_AT:]}, "loss")
    _assert_close(resumed, saved, "params/")
    _assert_close(resumed, saved, "batch_stats/")
    _assert_close(resumed, runs["two"], "params/")


def test_checkpoint_from_two_hosts_resumes_on_one(runs):
    saved, resumed = runs["two"], runs["one_from_two"]
    _assert_equal(resumed, saved, "mid/")
    _assert_close({"loss": resumed["loss"]}, {"loss": saved["loss"][SAVE_AT:]}, "loss")
    _assert_close(resumed, saved, "params/")
    _assert_close(resumed, saved, "batch_stats/")
    _assert_close(resumed, runs["one"], "params/")


def test_retrieval_over_sharded_database_equals_one_host(runs):
    one, two = runs["retrieval"]
    for key in ("db_codes", "dist", "dev_topk_dist", "dev_topk_idx"):
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    map_keys = sorted(k for k in one if k.startswith("map@"))
    assert len(map_keys) == 4
    for key in map_keys:
        assert two[key] == one[key], key
    np.testing.assert_array_equal(two["ap_expected"], one["ap_expected"])
    # Not a degenerate problem: codes of both signs, varied distances and
    # a mAP strictly between 0 and 1.
    assert 0 < (one["db_codes"] > 0).mean() < 1
    assert len(np.unique(one["dist"])) > 5
    assert 0 < one["map@7/reference/expected"] < 1


def test_hamming_topk_per_host_equals_one_host(runs):
    one, two = runs["retrieval"]
    np.testing.assert_array_equal(two["topk_dist"], one["topk_dist"])
    np.testing.assert_array_equal(two["topk_idx"], one["topk_idx"])
    # The search and the jitted top-k over the sharded database agree
    # (same tie rule: smaller index first).
    for run in (one, two):
        np.testing.assert_array_equal(run["topk_dist"], run["dev_topk_dist"])
        np.testing.assert_array_equal(run["topk_idx"], run["dev_topk_idx"])


def test_hamming_topk_over_global_mesh_equals_one_host(runs):
    one, two = runs["retrieval"]
    assert "global_topk_error" not in two, str(two["global_topk_error"])
    np.testing.assert_array_equal(two["global_topk_dist"], one["global_topk_dist"])
    np.testing.assert_array_equal(two["global_topk_idx"], one["global_topk_idx"])
