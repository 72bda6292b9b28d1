"""Non-finite input: every method boundary raises, naming the argument and count.

Each case plants 2 NaNs and 1 inf in one argument of a public entry point of
the probes (Net2Vec bulk fits, KPIs, CAVs, TCAV), LoCE, hashing and feature
extraction families and expects `NonFiniteError` (a ValueError) whose message
names that argument and the count 3. Before these checks the same inputs gave
TCAV scores of 0 with finite p-values, NaN LoCEs with stored IoU 0 and zeroed
Net2Vec activations, so each case is a silent wrong result turned into an
error. `check_finite` itself is compared with a NumPy count.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import features, parallel
from jaxcxai.checks import NonFiniteError, check_finite
from jaxcxai.concepts.loce import fit as loce_fit
from jaxcxai.concepts.loce import store as loce_store
from jaxcxai.concepts.loce.objectives import LoceConfig
from jaxcxai.concepts.probes import bulk, cavs, kpis, pipeline, tcav
from jaxcxai.concepts.probes.net2vec import Probe
from jaxcxai.concepts.probes.sources import array_source
from jaxcxai.hashing import duch, evaluation
from jaxcxai.hashing.search import hamming_topk

RNG = np.random.default_rng(0)


def _poison(x, flat=(1, 5, 7)):
    """A float32 copy of `x` with NaN, NaN, inf at the given flat positions."""
    x = np.array(x, np.float32)
    x.reshape(-1)[list(flat)] = [np.nan, np.nan, np.inf]
    return x


def _f32(*shape):
    return RNG.normal(size=shape).astype(np.float32)


MASKS = (RNG.uniform(size=(6, 2, 4, 4)) > 0.5).astype(np.uint8)
CAV_POS, CAV_NEG = _f32(2, 5, 8), _f32(3, 5, 8)
W_HEAD = _f32(12, 3)


def _head(a):
    return a.reshape(a.shape[0], -1) @ W_HEAD


@functools.cache
def _hash_state():
    hyper = duch.DuchHyper(bits=8, hidden=16)
    return duch.init_state(jax.random.key(0), hyper, 6, 5, 8)


def _hash_parts(bad_query_img=False):
    q = {"img": _f32(4, 6), "txt": _f32(4, 5), "labels": np.eye(2)[[0, 1, 0, 1]]}
    db = {"img": _f32(6, 6), "txt": _f32(6, 5), "labels": np.eye(2)[[0, 1] * 3]}
    if bad_query_img:
        q["img"] = _poison(q["img"])
    return q, db


def _store_chunks(bad_chunk):
    for i in range(2):
        acts, targets = _f32(3, 4, 3, 3), (_f32(3, 6, 6) > 0).astype(np.float32)
        yield loce_store.LoceChunk(
            {"l1": _poison(acts) if i == bad_chunk else acts}, targets
        )


# (entry point, its call with one poisoned argument, the name in the message)
CASES = {
    "fit_net2vec": (lambda: bulk.fit_net2vec(
        _poison(_f32(6, 2, 2, 3)), MASKS, jax.random.key(0)), "acts"),
    "fit_net2vec masks": (lambda: bulk.fit_net2vec(
        _f32(6, 2, 2, 3), _poison(MASKS), jax.random.key(0)), "masks"),
    "fit_net2vec_stream": (lambda: bulk.fit_net2vec_stream(
        array_source(_poison(_f32(6, 2, 2, 3)), MASKS), jax.random.key(0),
        alpha=np.full(2, 0.5, np.float32),
        config=bulk.Net2VecConfig(batch_size=3, epochs=2)),
        "source chunks' acts"),
    "fit_net2vec_layers": (lambda: bulk.fit_net2vec_layers(
        array_source({"a": _poison(_f32(6, 2, 2, 3)), "b": _f32(6, 2, 2, 3)},
                     MASKS), ["a", "b"], {"a": (2, 2, 3), "b": (2, 2, 3)},
        jax.random.key(0), alpha=np.full(2, 0.5, np.float32),
        config=bulk.Net2VecConfig(batch_size=3, epochs=1)),
        "source chunks' acts"),
    "evaluate_net2vec": (lambda: kpis.evaluate_net2vec(
        Probe(_f32(2, 1, 3), _f32(2, 1)),
        [(_f32(3, 2, 2, 3), MASKS[:3]), (_poison(_f32(3, 2, 2, 3)), MASKS[3:])]),
        "chunks' acts"),
    "evaluate_net2vec probe": (lambda: kpis.evaluate_net2vec(
        Probe(_poison(_f32(2, 1, 3), (0, 2, 4)), _f32(2, 1)),
        [(_f32(3, 2, 2, 3), MASKS[:3])]),
        "probe.w"),
    "fit_cavs": (lambda: cavs.fit_cavs(_poison(CAV_POS), CAV_NEG), "concept_acts"),
    "fit_cavs random": (lambda: cavs.fit_cavs(CAV_POS, _poison(CAV_NEG)),
                        "random_acts"),
    "cav_accuracy": (lambda: cavs.cav_accuracy(
        cavs.Cavs(_f32(2, 3, 8), _f32(2, 3, 8), _f32(2, 3)), _poison(CAV_POS),
        CAV_NEG), "concept_acts"),
    "directional_derivatives": (lambda: tcav.directional_derivatives(
        _head, _poison(_f32(4, 2, 2, 3)), 1, _f32(5, 12)), "acts"),
    "directional_derivatives cavs": (lambda: tcav.directional_derivatives(
        _head, _f32(4, 2, 2, 3), 1, _poison(_f32(5, 12))), "cavs"),
    "tcav_scores": (lambda: tcav.tcav_scores(_poison(_f32(5, 4))), "derivatives"),
    "run_tcav": (lambda: tcav.run_tcav(
        _head, _poison(_f32(4, 2, 2, 3)), 1, _f32(2, 5, 12), _f32(3, 5, 12)),
        "class_acts"),
    "run_tcav concepts": (lambda: tcav.run_tcav(
        _head, _f32(4, 2, 2, 3), 1, _poison(_f32(2, 5, 12)), _f32(3, 5, 12)),
        "concept_feats"),
    "tcav_layer": (lambda: pipeline.tcav_layer(
        _head, _poison(_f32(4, 2, 2, 3)), np.array([0, 1, 0, 1]), [0, 1],
        _f32(2, 3, 12), _f32(2, 12), num_tests=2), "class_acts"),
    "tcav_layer directions": (lambda: pipeline.tcav_layer(
        _head, _f32(4, 2, 2, 3), np.array([0, 1, 0, 1]), [0, 1],
        _poison(_f32(2, 3, 12)), _f32(2, 12), num_tests=2), "directions"),
    "loce fit_one": (lambda: loce_fit.fit_one(
        _poison(_f32(4, 3, 3)), np.ones((6, 6), np.float32)), "acts"),
    "loce fit_batch": (lambda: loce_fit.fit_batch(
        _poison(_f32(2, 4, 3, 3)), np.ones((2, 6, 6), np.float32)), "acts"),
    "loce fit_batch targets": (lambda: loce_fit.fit_batch(
        _f32(2, 4, 3, 3), _poison(np.ones((2, 6, 6)))), "targets"),
    "loce fit_concepts": (lambda: loce_fit.fit_concepts(
        _poison(_f32(4, 3, 3)), np.ones((2, 6, 6), np.float32)), "acts"),
    "loce fit_sharded": (lambda: loce_fit.fit_sharded(
        _poison(_f32(8, 4, 3, 3)), np.ones((8, 6, 6), np.float32),
        mesh=parallel.make_mesh()), "acts"),
    "loce fit_chunks": (lambda: list(loce_fit.fit_chunks(
        [({"l": _poison(_f32(2, 4, 3, 3))}, np.ones((2, 6, 6), np.float32))])),
        "chunk 0 layer 'l': acts"),
    "hashing encode": (lambda: duch.encode(_hash_state(), _poison(_f32(4, 6)), "img"),
                       "x"),
    "hashing evaluate": (lambda: evaluation.evaluate(
        _hash_state(), *_hash_parts(bad_query_img=True), [2], False),
        "query['img']"),
    "hamming_topk": (lambda: hamming_topk(
        _poison(np.sign(_f32(3, 16))), np.sign(_f32(10, 16)), 2), "query_codes"),
    "hamming_topk db": (lambda: hamming_topk(
        np.sign(_f32(3, 16)), _poison(np.sign(_f32(10, 16))), 2), "db_codes"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_entry_point_rejects_nonfinite_naming_argument_and_count(case):
    call, name = CASES[case]
    with pytest.raises(NonFiniteError) as err:
        call()
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith(f"{name} has 3 non-finite entries"), err.value
    assert err.value.count == 3


def test_loce_store_names_the_chunk_and_keeps_the_finished_ones(tmp_path):
    with pytest.raises(NonFiniteError, match=r"^chunk 1 layer 'l1' acts has 3 "):
        loce_store.fit_to_store(_store_chunks(bad_chunk=1), str(tmp_path),
                                config=LoceConfig(steps=2))  # fmt: skip
    # Chunk 0 was stored; nothing of chunk 1 and no results were written.
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "chunk_000000.npz"
    ]
    assert not (tmp_path / "results.npz").exists()


def test_broken_heads_raise_instead_of_scoring_zero():
    """A head with a NaN weight: the derivatives (not the inputs) are NaN."""
    w = W_HEAD.copy()
    w[0, 1] = np.nan

    def head(a):
        return a.reshape(a.shape[0], -1) @ w

    acts = _f32(4, 2, 2, 3)
    with pytest.raises(NonFiniteError, match="directional derivatives has 20 non"):
        tcav.directional_derivatives(head, acts, 1, _f32(5, 12))
    with pytest.raises(NonFiniteError, match="gradient of head_fn"):
        tcav.run_tcav(head, acts, 1, _f32(2, 5, 12), _f32(3, 5, 12),
                      method="mean_diff")  # fmt: skip
    with pytest.raises(NonFiniteError, match="directional derivatives"):
        pipeline.tcav_layer(head, acts, np.array([1, 1, 0, 0]), [1, 0],
                            _f32(2, 3, 12), _f32(2, 12), num_tests=2)  # fmt: skip


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        a1 = nn.relu(nn.Conv(4, (3, 3))(x))
        return nn.Dense(3)(a1.mean((1, 2))), {"conv1": a1}


def test_extract_rejects_a_broken_backbone_and_caches_nothing(tmp_path):
    model, images = _Tiny(), _f32(16, 6, 6, 3)
    variables = model.init(jax.random.key(0), images[:1])
    bad = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), variables)
    ok = features.extract(lambda x: model.apply(variables, x), images, ["conv1"],
                          batch_size=8, progress=False)  # fmt: skip
    assert np.isfinite(ok["conv1"]).all()
    with pytest.raises(NonFiniteError, match=r"'conv1' of images 0\.\.7 has \d+ "):
        features.extract(lambda x: model.apply(bad, x), images, ["conv1"],
                         batch_size=8, cache_dir=tmp_path, progress=False)  # fmt: skip
    assert not (tmp_path / "index.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".npy"]


def test_check_finite_counts_like_numpy():
    x = _poison(_f32(50, 3), flat=(0, 10, 149))
    for arr in (x, jnp.asarray(x), jnp.asarray(x, jnp.float16)):
        with pytest.raises(NonFiniteError) as err:
            check_finite({"x": arr})
        assert err.value.count == int((~np.isfinite(x)).sum()) == 3
    check_finite({"ints": np.arange(4), "bools": np.ones(3, bool), "none": None})
    thr = np.array([-np.inf, 0.5], np.float32)
    check_finite({"thr": thr}, allow_neg_inf=["thr"])  # disabled thresholds
    with pytest.raises(NonFiniteError, match="thr has 1 non-finite"):
        check_finite({"thr": thr})
    with pytest.raises(NonFiniteError, match=r"^d\['b'\] has 3 "):
        check_finite({"d": {"a": np.zeros(2), "b": x}})
    # Inside a trace the values are unknown: no check, no error.
    jax.jit(lambda a: check_finite({"a": a}) or a)(jnp.asarray(x))
    # A concrete array closed over by the traced function: its ops are staged
    # too, so it is not checked there either (it raised TracerBoolConversion).
    closed = jnp.asarray(x)
    jax.jit(lambda a: check_finite({"a": a, "closed": closed}) or a)(jnp.asarray(x))
