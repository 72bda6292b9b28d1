"""LoCE fitting: objectives, planted directions, equivalences, sharding, store."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import parallel
from jaxcxai.concepts.loce import fit as loce
from jaxcxai.concepts.loce import objectives as loce_objectives
from jaxcxai.concepts.loce import projection, reference
from jaxcxai.concepts.loce import store as loce_store
from jaxcxai.data.resample import interpolation_matrix


def _blob(rng, h, w):
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = rng.uniform(0.2, 0.35) * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)


def planted(n, c=16, hw=(8, 8), grid=(24, 24), mu=5.0, sigma=0.3, seed=0, u=None):
    """a_p = mu (2 m_p - 1) u + xi_p with a Rademacher unit u; soft targets."""
    rng = np.random.default_rng(seed)
    if u is None:
        u = rng.choice([-1.0, 1.0], c) / np.sqrt(c)
    masks = np.stack([_blob(rng, *hw) for _ in range(n)])
    acts = (
        sigma * rng.normal(size=(n, c) + hw)
        + mu * (2 * masks[:, None] - 1) * u[None, :, None, None]
    )
    a_h, a_w = (
        interpolation_matrix(hw[0], grid[0]),
        interpolation_matrix(hw[1], grid[1]),
    )
    targets = np.einsum("Hh,nhw,Ww->nHW", a_h, masks, a_w)
    return acts.astype(np.float32), targets.astype(np.float32), masks, u


def _np_objective(name, z, t, alpha, v):
    z, t, v = (np.asarray(x, np.float64) for x in (z, t, v))
    s = 1 / (1 + np.exp(-z))
    reg = (np.abs(v).sum() + np.sqrt((v**2).sum())) / len(v)
    if name == "net2vec":
        return -np.sum(alpha * t * s + (1 - alpha) * (1 - t) * (1 - s))
    if name == "proper_bce":
        th = (t > 0.5).astype(float)
        w = alpha * th * t + (1 - alpha) * (1 - th) * (1 - t)
        return np.sum(w * -(th * np.log(s) + (1 - th) * np.log(1 - s)))
    if name == "mse":
        return np.mean((t - s) ** 2) + reg
    if name == "mae":
        return np.mean(np.abs(t - s)) + reg
    dice = 1 - (2 * np.sum(t * s) + 1e-4) / (t.sum() + s.sum() + 1e-4)
    return np.mean((t - s) ** 2) + dice + reg


@pytest.mark.parametrize("name", ["net2vec", "proper_bce", "mse", "mae", "gcpv"])
def test_objectives_match_numpy(name):
    rng = np.random.default_rng(1)
    z, t, v = rng.normal(size=(6, 7)) * 2, rng.uniform(size=(6, 7)), rng.normal(size=5)
    t[t < 0.2] = 0.0
    alpha = 1 - np.mean(t > 0)
    got = loce_objectives.get_objective(name).fn(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(t, jnp.float32),
        alpha,
        jnp.asarray(v, jnp.float32),
    )
    np.testing.assert_allclose(got, _np_objective(name, z, t, alpha, v), rtol=2e-5)
    np.testing.assert_allclose(
        loce_objectives.alpha_from_target(jnp.asarray(t)), alpha, rtol=1e-6
    )
    # The batched MSE quirk: whole-tensor mean and norms, divided by B.
    zb, tb, vb = (
        rng.normal(size=(3, 4, 4)),
        rng.uniform(size=(3, 4, 4)),
        rng.normal(size=(3, 5)),
    )
    sb = 1 / (1 + np.exp(-zb))
    want = np.mean((tb - sb) ** 2) + (np.abs(vb).sum() + np.sqrt((vb**2).sum())) / 3
    got = loce_objectives.batch_loss(
        "mse", *(jnp.asarray(x, jnp.float32) for x in (zb, tb, np.zeros(3), vb))
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown LoCE objective"):
        loce_objectives.get_objective("nope")


def _iou(z, t):
    return np.asarray(loce_store.iou_on_grid(jnp.asarray(z), jnp.asarray(t)))


def test_planted_direction_recovered_and_iou_scale_invariant():
    acts, targets, _, u = planted(8, mu=5.0)
    v = np.asarray(loce.fit_batch(acts, targets))
    cos = v @ u / np.linalg.norm(v, axis=1)
    assert cos.min() > 0.9, cos
    z = jax.vmap(lambda a, b: projection.logits(a, b, (24, 24)))(
        jnp.asarray(v), jnp.asarray(acts)
    )
    iou = _iou(z, targets)
    assert iou.mean() > 0.95, iou
    for lam in (0.3, 7.0):  # no bias: [s > 0.5] = [z > 0] is invariant to v -> lam v
        np.testing.assert_array_equal(_iou(lam * z, targets), iou)


def test_native_projection_equals_upsampled_activations():
    torch = pytest.importorskip("torch")
    acts, targets, _, _ = planted(4, hw=(5, 7), grid=(19, 23))
    v = np.random.default_rng(2).normal(size=16).astype(np.float32)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(acts).double(),
        size=(19, 23),
        mode="bilinear",
        align_corners=False,
    )
    want = np.einsum("c,nchw->nhw", v.astype(np.float64), up.numpy())
    got = jax.vmap(lambda a: projection.logits(jnp.asarray(v), a, (19, 23)))(
        jnp.asarray(acts)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    native = loce.fit_batch(acts, targets)
    reference = loce.fit_batch(
        acts, targets, config=loce.LoceConfig(upsample="reference")
    )
    np.testing.assert_allclose(native, reference, atol=1e-4)


def test_vmap_equals_python_loop_and_concepts():
    acts, targets, _, _ = planted(3, c=8, grid=(12, 12))
    cfg = loce.LoceConfig(objective="proper_bce", steps=20)
    batch = loce.fit_batch(acts, targets, config=cfg)
    one = jax.jit(loce.fit_one, static_argnames="config")
    loop = np.stack([one(a, t, config=cfg) for a, t in zip(acts, targets)])
    np.testing.assert_allclose(batch, loop, atol=1e-6)
    # K concepts of one image share the activations.
    many = loce.fit_concepts(acts[0], targets, config=cfg)
    loop = np.stack([one(acts[0], t, config=cfg) for t in targets])
    np.testing.assert_allclose(many, loop, atol=1e-6)
    # Random init needs a key; keys give per-sample draws.
    with pytest.raises(ValueError, match="needs a PRNG key"):
        loce.fit_batch(acts, targets, config=loce.LoceConfig(init="normal"))
    with pytest.raises(ValueError, match="expected acts"):
        loce.fit_one(acts[0], targets)


@pytest.mark.parametrize("objective", ["net2vec", "proper_bce"])
def test_per_sample_fit_equals_batched_reference(objective):
    acts, targets, _, _ = planted(6, grid=(16, 16))
    cfg = loce.LoceConfig(objective=objective, reference_batch=6)
    alphas = loce_objectives.alpha_from_target(jnp.asarray(targets))
    ours = loce.fit_batch(acts, targets, config=cfg)
    ref = reference.fit_batched_reference(
        jnp.asarray(acts), jnp.asarray(targets), alphas, config=cfg
    )
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_matches_torch_reference_algorithm():
    """The reference re-typed in float64 torch: upsample, batch AdamW, 50 steps."""
    torch = pytest.importorskip("torch")
    acts, targets, _, _ = planted(5, c=12, grid=(20, 20), mu=2.0, sigma=1.0, seed=3)
    b = len(acts)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(acts).double(),
        size=(20, 20),
        mode="bilinear",
        align_corners=False,
    )
    t = torch.from_numpy(targets).double()
    alpha = 1 - (t > 0).double().mean(dim=(1, 2))
    v = torch.zeros(b, 12, 1, 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([v], lr=0.1, weight_decay=0.01)
    for _ in range(50):
        s = torch.sigmoid((v * up).sum(1))
        a = alpha[:, None, None]
        per = -(a * t * s + (1 - a) * (1 - t) * (1 - s)).sum(dim=(1, 2)) / b
        opt.zero_grad()
        per.mean().backward()
        opt.step()
    ours = loce.fit_batch(acts, targets, config=loce.LoceConfig(reference_batch=b))
    np.testing.assert_allclose(ours, v.detach().numpy()[:, :, 0, 0], atol=2e-4)


def test_fresh_optimizer_first_step_is_lr_sign():
    acts, targets, _, _ = planted(6, c=8, grid=(12, 12), mu=2.0, sigma=1.0)
    cfg = loce.LoceConfig(reference_batch=4)
    a_h = interpolation_matrix(8, 12).astype(np.float64)
    up = np.einsum("Hh,nchw,Ww->ncHW", a_h, acts.astype(np.float64), a_h)
    t = targets.astype(np.float64)
    alpha = 1 - np.mean(t > 0, axis=(1, 2))

    def grad(v, idx):  # analytic gradient of the batch-mean Net2Vec loss, float64
        z = np.einsum("c,ncHW->nHW", v, up[idx])
        s = 1 / (1 + np.exp(-z))
        a = alpha[idx][:, None, None]
        dz = -s * (1 - s) * (a * t[idx] - (1 - a) * (1 - t[idx])) / 16.0
        return np.einsum("nHW,ncHW->c", dz, up[idx]) / len(idx)

    # 6 samples, 2 epochs, batch 4: 3 steps over [0..5, 0..5] (the last straddles).
    v = np.zeros(8)
    for idx in ([0, 1, 2, 3], [4, 5, 0, 1], [2, 3, 4, 5]):
        g = grad(v, idx)
        new = v * (1 - 0.1 * 0.01) - 0.1 * g / (
            np.abs(g) + 1e-8
        )  # fresh Adam: m/sqrt(v) = sign
        np.testing.assert_allclose(np.abs(new - v * (1 - 1e-3)), 0.1, rtol=1e-5)
        v = new
    got = reference.fit_shared(acts, targets, config=cfg, batch_size=4, epochs=2)
    np.testing.assert_allclose(got, v, atol=1e-5)
    # A persistent optimizer does not move every coordinate by lr after step 1.
    kept = reference.fit_shared(
        acts, targets, config=cfg, batch_size=4, epochs=2, fresh_optimizer=False
    )
    assert np.abs(np.asarray(kept) - v).max() > 1e-3


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    assert jax.device_count() == 8
    acts, targets, _, _ = planted(12, c=8, grid=(12, 12))  # 12 pads to 16
    mesh = parallel.make_mesh()
    out = loce.fit_sharded(acts, targets, mesh=mesh)
    np.testing.assert_allclose(out, loce.fit_batch(acts, targets), atol=1e-6)
    assert out.shape == (12, 8)
    chunks = [(acts[:8], targets[:8]), (acts[8:], targets[8:])]
    streamed = np.concatenate(list(loce.fit_chunks(chunks, mesh=mesh)))
    np.testing.assert_allclose(streamed, out, atol=1e-6)


def test_gcpv_native_mask_and_multiview():
    acts, _, masks, u = planted(4, grid=(8, 8))
    v = np.asarray(loce.fit_batch(acts, masks, config=loce_objectives.GCPV_CONFIG))
    z = np.einsum("nc,nchw->nhw", v, acts)
    assert _iou(z, masks).mean() > 0.95
    assert (v @ u / np.linalg.norm(v, axis=1)).min() > 0.9
    # Two identical views double the loss; Adam is scale-free up to epsilon.
    acts, targets, _, _ = planted(3, grid=(12, 12))
    two = loce.fit_batch(np.stack([acts, acts], 1), np.stack([targets, targets], 1))
    np.testing.assert_allclose(two, loce.fit_batch(acts, targets), atol=1e-4)


def test_gloce_and_multilayer():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(7, 3)), np.array([2, 0, 2, 1, 0, 2, 1])
    classes, means = loce.gloce(x, labels)
    np.testing.assert_array_equal(classes, [0, 1, 2])
    np.testing.assert_allclose(
        means, [x[labels == c].mean(0) for c in classes], rtol=1e-6
    )
    ml = loce.multilayer({"b": x[:, :1], "a": x[:, 1:]}, ["a", "b"])
    np.testing.assert_allclose(ml, np.concatenate([x[:, 1:], x[:, :1]], 1), rtol=1e-6)


def test_iou_original_matches_skimage():
    skimage = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(4)
    proj = (rng.uniform(size=(3, 10, 10)) * 255).astype(np.uint8)
    masks = [
        rng.uniform(size=(23, 31)) > 0.5,
        rng.uniform(size=(23, 31)) > 0.5,
        rng.uniform(size=(7, 5)) > 0.3,
    ]
    want = []
    for p, m in zip(proj, masks):
        pred = skimage.resize(p, m.shape, order=1, mode="reflect") > 0.5
        want.append((pred & m).sum() / (pred | m).sum())
    np.testing.assert_allclose(loce_store.iou_original(proj, masks), want, rtol=1e-6)


def _chunks(acts, targets, masks, fail_after=None):
    for i in range(0, len(acts), 4):
        if fail_after is not None and i // 4 == fail_after:
            raise KeyboardInterrupt("simulated interruption")
        sl = slice(i, i + 4)
        yield loce_store.LoceChunk(
            {"l1": acts[sl], "l2": acts[sl, :5]},
            targets[sl],
            list(masks[sl]),
            {
                "image_id": list(range(i, min(i + 4, len(acts)))),
                "concept": ["cat"] * len(acts[sl]),
            },
        )


def test_store_resumes_to_identical_arrays(tmp_path):
    acts, targets, masks, _ = planted(10, c=8, grid=(12, 12))
    cfg = loce.LoceConfig(steps=10)
    full = loce_store.fit_to_store(
        _chunks(acts, targets, masks),
        str(tmp_path / "a"),
        config=cfg,
        with_projections=True,
    )
    with pytest.raises(KeyboardInterrupt):
        loce_store.fit_to_store(
            _chunks(acts, targets, masks, fail_after=2),
            str(tmp_path / "b"),
            config=cfg,
            with_projections=True,
        )
    assert not (tmp_path / "b" / "results.npz").exists()
    resumed = loce_store.fit_to_store(
        lambda start: itertools.islice(_chunks(acts, targets, masks), start, None),
        str(tmp_path / "b"),
        config=cfg,
        with_projections=True,
    )
    loaded = loce_store.load_results(str(tmp_path / "b"))
    for res in (resumed, loaded):
        assert set(res.layers) == {"l1", "l2"}
        for name, arrays in full.layers.items():
            for field, value in arrays.items():
                np.testing.assert_array_equal(res.layers[name][field], value)
        np.testing.assert_array_equal(
            res.index["image_id"], [str(i) for i in range(10)]
        )
    assert (
        full.layers["l1"]["loce"].shape == (10, 8)
        and full.layers["l2"]["proj"].dtype == np.uint8
    )
    np.testing.assert_allclose(
        full.layers["l1"]["loce"], loce.fit_batch(acts, targets, config=cfg), atol=1e-6
    )
    with pytest.raises(KeyboardInterrupt):
        loce_store.fit_to_store(
            _chunks(acts, targets, masks, fail_after=1), str(tmp_path / "c"), config=cfg
        )
    with pytest.raises(ValueError, match="another config"):
        loce_store.fit_to_store(
            _chunks(acts, targets, masks), str(tmp_path / "c"), config=loce.LoceConfig()
        )
