"""TopK sparse autoencoder: encoding, planted dictionaries, streaming, seeds."""

import jax
import numpy as np
import optax
import pytest

from jaxcxai.concepts.discovery import matching, sae, sae_stream
from jaxcxai.concepts.discovery.common import host_rng


def _planted(seed=0, n=20000, d=32, m=24, k=3):
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((m, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    idx = np.argsort(rng.random((n, m)), axis=1)[:, :k]
    codes = np.zeros((n, m))
    np.put_along_axis(codes, idx, rng.uniform(0.5, 1.5, (n, k)), axis=1)
    x = codes @ atoms + 0.01 * rng.standard_normal((n, d))
    return x.astype(np.float32), atoms


def test_encode_is_topk_relu_of_numpy_reference():
    rng = np.random.default_rng(1)
    params = {
        "w_enc": rng.standard_normal((6, 10)).astype(np.float32),
        "w_dec": rng.standard_normal((10, 6)).astype(np.float32),
        "b_enc": rng.standard_normal(10).astype(np.float32),
        "b_dec": rng.standard_normal(6).astype(np.float32),
    }
    x = rng.standard_normal((7, 6)).astype(np.float32)
    pre = (x - params["b_dec"]) @ params["w_enc"] + params["b_enc"]
    ref = np.zeros_like(pre)
    for i in range(7):
        top = np.argsort(-pre[i])[:3]
        ref[i, top] = np.maximum(pre[i, top], 0)
    codes = np.asarray(sae.encode(params, x, 3))
    np.testing.assert_allclose(codes, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(sae.decode(params, codes)),
        ref @ params["w_dec"] + params["b_dec"],
        rtol=1e-5,
    )


def test_recovers_planted_sparse_dictionary():
    x, atoms = _planted()
    chunks = [x[i : i + 5000] for i in range(0, len(x), 5000)]
    state, hist = sae_stream.fit_sae(
        chunks,
        jax.random.key(0),
        num_latents=48,
        k=3,
        batch_size=256,
        learning_rate=3e-3,
        epochs=4,
        batches_per_call=16,
    )
    w_dec = np.asarray(state.params["w_dec"])
    np.testing.assert_allclose(np.linalg.norm(w_dec, axis=1), 1.0, rtol=1e-5)
    best = matching.cosine_matrix(atoms, w_dec).max(axis=1)  # per planted atom
    assert best.min() >= 0.9
    assert hist["fvu"][-1] < 0.1 and hist["fvu"][-1] < hist["fvu"][0]
    # Rows flow across epochs; only the final partial batch is dropped.
    assert hist["rows_used"] == 80000 // 256 * 256
    assert hist["rows_dropped"] == 80000 % 256
    np.testing.assert_allclose(hist["l0"], 3.0)
    fac = sae.sae_factorization(state.params, x[:500], 3)
    rec = np.asarray(fac.codes) @ np.asarray(fac.components) + np.asarray(fac.mean)
    assert (
        1 - ((rec - x[:500]) ** 2).sum() / ((x[:500] - x[:500].mean(0)) ** 2).sum()
        > 0.9
    )


def test_streaming_is_independent_of_chunking_and_seeds_vmap():
    x, _ = _planted(seed=2, n=2048, d=8, m=6, k=2)
    kw = dict(num_latents=8, k=2, batch_size=128, batches_per_call=4, epochs=1)
    key = jax.random.key(3)
    one, h1 = sae_stream.fit_sae([x], key, **kw)
    many, h2 = sae_stream.fit_sae([x[:300], x[300:1100], x[1100:]], key, **kw)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(many.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(h1["loss"], h2["loss"])
    seeds, hs = sae_stream.fit_sae([x[:512]], key, num_seeds=2, **kw)
    assert hs["loss"].shape == (2, 4)
    assert np.asarray(seeds.params["w_dec"]).shape == (2, 8, 8)
    # Seed 0 of the vmapped run is a single run started from that seed's init.
    init_keys = jax.random.split(jax.random.split(key, 3)[0], 2)
    step = jax.jit(sae.make_sae_train_step())
    state = sae.create_sae_state(
        init_keys[0], 8, 8, 2, optax.adam(1e-3), b_dec=x[:512].mean(0)
    )
    order = host_rng(jax.random.split(key, 3)[1])
    rows = x[:512][order.permutation(512)]
    for i in range(4):
        state, _ = step(state, {"x": rows[i * 128 : (i + 1) * 128]}, key)
    np.testing.assert_allclose(
        np.asarray(seeds.params["w_dec"][0]),
        np.asarray(state.params["w_dec"]),
        atol=1e-5,
    )


def test_dead_latents_are_counted():
    x, _ = _planted(seed=4, n=512, d=8, m=6, k=2)
    state = sae.create_sae_state(
        jax.random.key(0), 8, 8, 2, optax.sgd(0.0), b_dec=x.mean(0)
    )
    # Latent 0 can never win the top-k: its bias is hugely negative.
    state = state.replace(
        params=dict(state.params, b_enc=state.params["b_enc"].at[0].set(-1e6))
    )
    step = jax.jit(sae.make_sae_train_step(dead_after=3))
    for i in range(4):
        state, metrics = step(
            state, {"x": x[i * 128 : (i + 1) * 128]}, jax.random.key(0)
        )
    codes = np.asarray(sae.encode(state.params, x[:512], 2))
    never = ~np.any(codes > 0, axis=0)
    assert never[0]
    np.testing.assert_array_equal(np.asarray(sae.dead_latents(state, 3)), never)
    assert int(metrics["dead"]) == never.sum()


def test_bad_input_is_rejected():
    x, _ = _planted(seed=5, n=300, d=8, m=6, k=2)
    bad = x.copy()
    bad[5, :3] = np.nan
    with pytest.raises(ValueError, match=r"chunks\[1\] has 3 non-finite"):
        sae_stream.fit_sae(
            [x, bad], jax.random.key(0), num_latents=4, k=2, batch_size=64
        )
    with pytest.raises(ValueError, match="k=5 exceeds num_latents=4"):
        sae_stream.fit_sae([x], jax.random.key(0), num_latents=4, k=5, batch_size=64)
    with pytest.raises(ValueError, match="at least batch_size=512"):
        sae_stream.fit_sae([x], jax.random.key(0), num_latents=4, k=2, batch_size=512)
    gen = (c for c in [x])
    with pytest.raises(ValueError, match="no rows in epoch 1"):
        sae_stream.fit_sae(
            gen, jax.random.key(0), num_latents=4, k=2, batch_size=64, epochs=2
        )
