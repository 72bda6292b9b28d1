"""Net2Vec probes: objectives, logit upsampling, bulk fitting, embeddings."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcxai import parallel
from jaxcxai.concepts.probes import bulk, kpis, net2vec, sources
from jaxcxai.concepts.probes import state as probe_state
from jaxcxai.data.resample import resize
from jaxcxai.metrics import segmentation as seg

N, H0, W0, C, K = 32, 4, 4, 6, 3
SIZE = (8, 8)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _planted(seed=0, n=N, h=H0, w=W0, c=C, k=K, strength=4.0):
    """a_p = sum_k m_kp * strength * u_k + noise; labels = bilinear(m) > 0.5.

    The directions are orthonormal so that u_k itself is the best probe.
    """
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.normal(size=(c, k)))[0].T  # orthonormal directions
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros((n, k, h, w), np.float32)
    for i in range(n):
        for j in range(k):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.0, 2.0)
            m[i, j] = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    acts = rng.normal(size=(n, h, w, c)) + strength * np.einsum("nkhw,kc->nhwc", m, u)
    labels = np.asarray(resize(m, (2 * h, 2 * w))) > 0.5
    return acts.astype(np.float32), labels.astype(np.float32), u


def test_objectives_match_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 3, 4, 5)) * 3
    t = np.clip(rng.uniform(-0.5, 1.5, size=z.shape), 0, 1)
    a = np.array([0.8, 0.3])[:, None]
    s = _sigmoid(z)
    ref = -np.mean(
        a[..., None, None] * s * t + (1 - a[..., None, None]) * (1 - s) * (1 - t),
        (-2, -1),
    )
    np.testing.assert_allclose(net2vec.net2vec_loss(z, t, a), ref, rtol=1e-5)
    f = 0.95
    ref = -np.mean(f * t * np.log(s) + (1 - f) * (1 - t) * np.log(1 - s), (-2, -1))
    np.testing.assert_allclose(net2vec.balanced_bce_loss(z, t, f), ref, rtol=1e-5)
    hard = (t > 0.5).astype(float)
    wgt = a[..., None, None] * hard * t + (1 - a[..., None, None]) * (1 - hard) * (
        1 - t
    )
    bce = -(hard * np.log(s) + (1 - hard) * np.log(1 - s))
    ref = np.mean(wgt * bce, (-2, -1))
    np.testing.assert_allclose(net2vec.fuzzy_bce_loss(z, t, a), ref, rtol=1e-5)
    m = np.zeros((2, 3, 2, 2))
    m[0, 0, 0, 0] = m[1, 0, :, 0] = 1.0
    # foreground fractions: concept 0: (1/4 + 2/4) / 2, the others none.
    np.testing.assert_allclose(net2vec.foreground_alpha(m), [1 - 0.375, 1, 1])


@pytest.mark.parametrize("out", [(8, 8), (13, 7)])
def test_logit_upsampling_equals_activation_upsampling(out):
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(3, 5, 4, C)).astype(np.float32)
    probe = net2vec.Probe(
        jnp.asarray(rng.normal(size=(2, C)), jnp.float32), jnp.asarray([0.3, -1.0])
    )
    got = net2vec.probe_logits(probe, jnp.asarray(acts), out)
    up = np.asarray(resize(acts, out, axes=(1, 2)), np.float64)  # upsample acts first
    ref = (
        np.einsum("nhwc,kc->knhw", up, np.asarray(probe.w))
        + np.asarray(probe.b)[:, None, None, None]
    )
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize(
    "objective,pos_weight,lr,min_iou",
    # Net2Vec's alpha (~0.85 here) rewards true positives, so it over-segments.
    [("balanced_bce", 0.5, 1.0, 0.85), ("net2vec", None, 5.0, 0.6)],
)
def test_planted_direction_recovered(objective, pos_weight, lr, min_iou):
    acts, labels, u = _planted(strength=5.0)
    cfg = bulk.Net2VecConfig(
        objective=objective, pos_weight=pos_weight, optimizer="sgd",
        learning_rate=lr, batch_size=8, epochs=8, init="zeros",
    )  # fmt: skip
    probe, losses = bulk.fit_net2vec(acts, labels, jax.random.key(0), config=cfg)
    assert probe.w.shape == (K, 1, C) and probe.b.shape == (K, 1)
    assert float(losses[-1]) < float(losses[0])
    cos = np.einsum("krc,kc->kr", np.asarray(probe.w), u)
    cos /= np.linalg.norm(np.asarray(probe.w), axis=-1)
    assert cos.min() > 0.9, cos
    prob = jax.nn.sigmoid(net2vec.probe_logits(probe, jnp.asarray(acts), SIZE))
    iou = seg.set_iou(prob, np.moveaxis(labels, 1, 0)[:, None])
    assert float(iou.min()) > min_iou, iou
    # IoU at 0.5 only depends on the sign of the logit: invariant to w, b -> lam w, lam b.
    scaled = net2vec.Probe(3.0 * probe.w, 3.0 * probe.b)
    prob2 = jax.nn.sigmoid(net2vec.probe_logits(scaled, jnp.asarray(acts), SIZE))
    np.testing.assert_allclose(
        seg.set_iou(prob2, np.moveaxis(labels, 1, 0)[:, None]), iou
    )


def _reference_loop(acts, labels, weights, key, cfg, runs, pos_weight):
    """Upsample activations, then one optimizer per (concept, run), in Python."""
    up = jnp.asarray(resize(acts, SIZE, axes=(1, 2)))
    init = probe_state.init_probes(key, C, K, runs, cfg.init, 0)
    steps = N // cfg.batch_size
    tx = cfg.tx()

    def loss(params, a, t, wt, f):
        z = jnp.einsum("bhwc,c->bhw", a, params[0], precision="highest") + params[1]
        per = -jnp.mean(
            f * t * jax.nn.log_sigmoid(z) + (1 - f) * (1 - t) * jax.nn.log_sigmoid(-z),
            (-2, -1),
        )
        return jnp.sum(wt * per) / jnp.sum(wt)

    @jax.jit
    def step(params, state, a, t, wt, f):
        g = jax.grad(loss)(params, a, t, wt, f)
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    w, b = np.zeros((K, runs, C)), np.zeros((K, runs))
    for k in range(K):
        for r in range(runs):
            params = (init.w[k, r], init.b[k, r])
            state = tx.init(params)
            for epoch in range(cfg.epochs):
                for s in np.asarray(bulk.minibatch_orders(key, runs, epoch, 0, steps))[
                    r
                ]:
                    sl = slice(s * cfg.batch_size, (s + 1) * cfg.batch_size)
                    if weights[sl, k].sum() == 0:
                        continue  # the bulk fit skips probes without data
                    params, state = step(
                        params, state, up[sl], labels[sl, k], weights[sl, k], pos_weight
                    )
            w[k, r], b[k, r] = params
    return w, b


@pytest.mark.parametrize("optimizer,lr", [("adamw", 0.05), ("sgd", 0.5)])
def test_bulk_fit_equals_per_concept_loop(optimizer, lr):
    acts, labels, _ = _planted(seed=2)
    weights = np.ones((N, K), np.float32)
    weights[:8, 2] = 0.0  # concept 2 has no data in minibatch 0
    weights[20:23, 1] = 0.0
    cfg = bulk.Net2VecConfig(
        objective="balanced_bce", pos_weight=0.7, optimizer=optimizer,
        learning_rate=lr, batch_size=8, epochs=3,
    )  # fmt: skip
    key = jax.random.key(3)
    src = bulk.array_source(acts, labels, weights, shuffle_seed=None)
    probes, _ = bulk.fit_net2vec_stream(src, key, config=cfg, num_runs=2)
    w_ref, b_ref = _reference_loop(acts, labels, weights, key, cfg, 2, 0.7)
    np.testing.assert_allclose(probes.w[0], w_ref, atol=1e-5)
    np.testing.assert_allclose(probes.b[0], b_ref, atol=1e-5)


@pytest.mark.multidevice
def test_sharded_fit_equals_unsharded():
    assert jax.device_count() == 8
    acts, labels, _ = _planted(seed=4)
    cfg = bulk.Net2VecConfig(
        objective="net2vec",
        optimizer="adamw",
        learning_rate=0.05,
        batch_size=16,
        epochs=2,
    )
    key = jax.random.key(5)
    plain, _ = bulk.fit_net2vec(
        acts, labels, key, config=cfg, num_runs=2, chunk_size=16
    )
    mesh = parallel.make_mesh()
    sharded, _ = bulk.fit_net2vec(
        acts, labels, key, config=cfg, num_runs=2, chunk_size=16, mesh=mesh
    )
    np.testing.assert_allclose(sharded.w, plain.w, atol=1e-5)
    np.testing.assert_allclose(sharded.b, plain.b, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        bulk.fit_net2vec(
            acts, labels, key, mesh=mesh, config=bulk.Net2VecConfig(batch_size=12)
        )


def test_layers_grouped_by_shape_equal_single_layer_fits():
    acts, labels, _ = _planted(seed=6)
    rng = np.random.default_rng(7)
    layers = {
        "a": acts,
        "small": rng.normal(size=(N, 2, 2, 5)).astype(np.float32),
        "c": acts[..., ::-1] + 0.5,
    }
    shapes = {name: a.shape for name, a in layers.items()}
    assert bulk.group_layers(shapes) == [["a", "c"], ["small"]]
    cfg = bulk.Net2VecConfig(
        optimizer="adamw", learning_rate=0.05, batch_size=8, epochs=1
    )
    key = jax.random.key(8)
    thr = {name: net2vec.netdissect_thresholds(a, 0.3) for name, a in layers.items()}
    src = bulk.array_source(layers, labels, chunk_size=16, shuffle_seed=1)
    out = bulk.fit_net2vec_layers(
        src, list(layers), shapes, key, config=cfg, thresholds=thr
    )
    for i, name in enumerate(layers):
        single = bulk.array_source(layers[name], labels, chunk_size=16, shuffle_seed=1)
        ref, _ = bulk.fit_net2vec_stream(
            single, key, config=cfg, layer_ids=[i], thresholds=thr[name][None]
        )
        np.testing.assert_allclose(out[name].w, ref.w[0], atol=1e-5)
        np.testing.assert_allclose(out[name].b, ref.b[0], atol=1e-5)
    with pytest.raises(ValueError, match="dataset-level alpha"):
        bulk.fit_net2vec_stream(
            src, key, config=bulk.Net2VecConfig(objective="net2vec")
        )


def test_netdissect_thresholds_match_numpy_quantile():
    rng = np.random.default_rng(9)
    acts = np.maximum(rng.normal(size=(37, 5, 3, 4)), 0).astype(np.float32)
    ref = np.quantile(acts.reshape(-1, 4).astype(np.float64), 0.995, axis=0)
    np.testing.assert_allclose(net2vec.netdissect_thresholds(acts), ref, rtol=1e-6)
    chunks = (acts[i : i + 5] for i in range(0, 37, 5))
    np.testing.assert_allclose(net2vec.netdissect_thresholds(chunks), ref, rtol=1e-6)
    ref = np.quantile(acts.reshape(-1, 4), 0.9, axis=0)
    np.testing.assert_allclose(net2vec.netdissect_thresholds(acts, 0.1), ref, rtol=1e-6)
    thr = net2vec.netdissect_thresholds(acts)
    kept = net2vec.apply_thresholds(jnp.asarray(acts), thr)
    np.testing.assert_array_equal(kept, np.where(acts > thr, acts, 0))


def test_embeddings_match_numpy_formulas():
    rng = np.random.default_rng(10)
    w = rng.normal(size=(4, C)) * rng.uniform(0.5, 3, (4, 1))
    b = rng.normal(size=4)
    emb = net2vec.probe_to_embedding(net2vec.Probe(jnp.asarray(w), jnp.asarray(b)))
    np.testing.assert_allclose(emb.support, -b / (w**2).sum(1), rtol=1e-5)
    # Normalizing keeps the logit function.
    x = rng.normal(size=(7, C))
    back = net2vec.embedding_to_probe(net2vec.normalize_embedding(emb))
    np.testing.assert_allclose(
        x @ np.asarray(back.w).T + np.asarray(back.b), x @ w.T + b, rtol=1e-4, atol=1e-5
    )
    # MEAN_NORMALIZED_DIST, written out in NumPy.
    norms = np.linalg.norm(w, axis=1)
    n_unit = w / norms[:, None]
    sup_unit = (-b / norms**2) * norms  # support factor of the unit-normal form
    m = n_unit.mean(0)
    sup = np.mean(sup_unit * 1.0) / (m @ m)
    ref_normal = m / np.linalg.norm(m)
    ref_support = sup * np.linalg.norm(m)
    ref_scale = norms.mean()  # members' scales after normalization
    agg = net2vec.mean_normalized_embedding(emb)
    np.testing.assert_allclose(agg.normal, ref_normal, rtol=1e-5)
    np.testing.assert_allclose(agg.support, ref_support, rtol=1e-5)
    np.testing.assert_allclose(agg.scale, ref_scale, rtol=1e-5)
    # Its signed distance is the mean of the members' distances.
    dist = x @ n_unit.T - sup_unit
    agg_dist = x @ np.asarray(agg.normal) - float(agg.support)
    np.testing.assert_allclose(agg_dist * np.linalg.norm(m), dist.mean(1), atol=1e-5)


def test_evaluate_net2vec_streams_the_same_metrics():
    acts, labels, u = _planted(seed=11)
    probe = net2vec.Probe(
        jnp.asarray(np.stack([4 * u, -u], axis=1), jnp.float32), jnp.full((K, 2), -2.0)
    )
    chunks = [(acts[i : i + 16], labels[i : i + 16]) for i in range(0, N, 16)]
    got = kpis.evaluate_net2vec(probe, chunks)
    prob = jax.nn.sigmoid(net2vec.probe_logits(probe, jnp.asarray(acts), SIZE))
    target = np.moveaxis(labels, 1, 0)[:, None]
    np.testing.assert_allclose(got["set_iou"], seg.set_iou(prob, target), rtol=1e-6)
    assert float(got["set_iou"][:, 0].min()) > 0.5 > float(got["set_iou"][:, 1].max())
    np.testing.assert_allclose(
        got["mean_sample_iou"], seg.sample_iou(prob, target).mean(-1), rtol=1e-5
    )
    np.testing.assert_allclose(
        got["iou_curve"], seg.iou_threshold_curve(prob, target)[1], rtol=1e-6
    )
    ece = seg.expected_calibration_error(prob, target)
    np.testing.assert_allclose(got["ece"], ece, rtol=1e-4, atol=1e-6)


class _FakeCache:
    """The part of `jaxcxai.features.FeatureCache` that `cache_source` reads."""

    def __init__(self, arrays, sizes):
        self.arrays, self.index = arrays, {"chunks": sizes}

    def chunk(self, name, k):
        start = sum(self.index["chunks"][:k])
        return self.arrays[name][start : start + self.index["chunks"][k]]


def test_cache_source_streams_aligned_chunks():
    rng = np.random.default_rng(12)
    arrays = {"a": rng.normal(size=(10, 2, 2, 3)), "b": rng.normal(size=(10, 2, 2, 3))}
    masks = rng.uniform(size=(10, 2, 4, 4))
    cache = _FakeCache(arrays, [4, 6])
    plain = list(sources.cache_source(cache, masks, shuffle_seed=None)(0, ["b", "a"]))
    assert [c[0].shape for c in plain] == [(2, 4, 2, 2, 3), (2, 6, 2, 2, 3)]
    np.testing.assert_array_equal(plain[1][0][1], arrays["a"][4:])
    np.testing.assert_array_equal(plain[1][1], masks[4:])
    seen = []
    for acts, m, _ in sources.cache_source(cache, masks, shuffle_seed=3)(1, ["a"]):
        for x, y in zip(acts[0], m):  # every example keeps its own mask
            i = int(np.argmin(np.abs(arrays["a"] - x).sum((1, 2, 3))))
            np.testing.assert_array_equal(masks[i], y)
            seen.append(i)
    assert sorted(seen) == list(range(10))
    with pytest.raises(ValueError, match="examples"):
        sources.cache_source(cache, masks[:9])
