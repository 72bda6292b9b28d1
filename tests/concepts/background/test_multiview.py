"""Multi-view LoCE / Net2Vec / GloCE on background-randomised views."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import parallel
from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.background import bias, multiview, paste
from jaxcxai.concepts.loce import fit, projection

LR = 0.1
# ce_method -> (objective, loss scale) of the reference (bce: 1/B per map and
# a batch mean, B = 512 maps; proper_bce: per-map pixel sums, batch mean).
REFERENCE = {"loce": ("net2vec", 512.0**-2), "loce_proper_bce": ("proper_bce", 1 / 512)}


def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """torch bilinear, align_corners=False, as an (n_out, n_in) float64 matrix."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1, w1 = min(i0 + 1, n_in - 1), src - i0
        m[i, i0] += 1.0 - w1
        m[i, i1] += w1
    return m


def _np_loss_grad(v, acts, targets, objective, scale):
    """float64 summed multi-view loss and its gradient; acts (V, C, h, w)."""
    v, acts, t = (np.asarray(x, np.float64) for x in (v, acts, targets))
    a_h, a_w = (
        _bilinear(acts.shape[-2], t.shape[-2]),
        _bilinear(acts.shape[-1], t.shape[-1]),
    )
    up = np.einsum("Hh,vchw,Ww->vcHW", a_h, acts, a_w)
    z = np.einsum("c,vcHW->vHW", v, up)
    s = 1.0 / (1.0 + np.exp(-z))
    alpha = 1.0 - (t > 0).mean(axis=(1, 2))[:, None, None]
    if objective == "net2vec":
        loss = -np.sum(alpha * t * s + (1 - alpha) * (1 - t) * (1 - s))
        dz = -(alpha * t - (1 - alpha) * (1 - t)) * s * (1 - s)
    else:
        th = (t > 0.5).astype(np.float64)
        w = alpha * th * t + (1 - alpha) * (1 - th) * (1 - t)
        loss = np.sum(w * (np.logaddexp(0, z) - th * z))
        dz = w * (s - th)
    return scale * loss, scale * np.einsum("vHW,vcHW->c", dz, up)


def _blobs(rng, n, size):
    yy, xx = np.mgrid[:size, :size]
    c = rng.uniform(0.3, 0.7, (n, 2)) * size
    r = rng.uniform(0.2, 0.3, n) * size
    d = (yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2
    return (d < r[:, None, None] ** 2).astype(np.float32)


def _random_case(n=3, v=4, c=5, native=4, grid=9, seed=0):
    rng = np.random.default_rng(seed)
    masks = _blobs(rng, n * v, native * 3).reshape(n, v, native * 3, native * 3)
    acts = rng.normal(size=(n, v, c, native, native)).astype(np.float32)
    acts += 1.5 * (2 * masks[:, :, None, ::3, ::3] - 1) * rng.normal(size=(c, 1, 1))
    return acts.astype(np.float32), np.asarray(
        multiview.grid_targets(masks, (grid,) * 2)
    )


def test_method_config_follows_the_reference():
    cfg = multiview.method_config("loce")
    assert (cfg.objective, cfg.steps, cfg.lr, cfg.init) == ("net2vec", 30, 0.1, "zeros")
    assert (cfg.b1, cfg.b2, cfg.eps, cfg.weight_decay) == (0.9, 0.999, 1e-8, 0.01)
    assert cfg.reference_batch == multiview.BATCH == 512 and multiview.EPOCHS == 30
    assert cfg.scale() == 512.0**-2  # bce: -1/B per map, then a batch mean
    pb = multiview.method_config("net2vec_proper_bce")
    assert pb.objective == "proper_bce" and pb.scale() == 1 / 512
    assert bias.GRID == (80, 80)
    with pytest.raises(ValueError, match="unknown method"):
        multiview.method_config("tcav")


@pytest.mark.parametrize("method", ["loce", "loce_proper_bce"])
def test_summed_loss_and_gradient_match_numpy_float64(method):
    acts, targets = _random_case()
    cfg = multiview.method_config(method)
    v = np.random.default_rng(1).normal(size=acts.shape[2]).astype(np.float32)
    loss, grad = jax.value_and_grad(multiview.multiview_loss)(
        jnp.asarray(v), acts[0], targets[0], config=cfg
    )
    ref_loss, ref_grad = _np_loss_grad(v, acts[0], targets[0], *REFERENCE[method])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=1e-4, atol=1e-6 * np.abs(ref_grad).max()
    )


@pytest.mark.parametrize("method", ["loce", "loce_proper_bce"])
def test_the_fit_steps_on_the_summed_gradient(method):
    # One AdamW step from zeros is -lr g / (|g| + eps): with eps ~ |g| it
    # shows |g|, so a mean over views (g / V) or another object's views fail.
    acts, targets = _random_case()
    cfg = multiview.method_config(method, steps=1, eps=1.0, loss_scale=1.0)
    v1 = np.asarray(multiview.fit_loces(acts, targets, config=cfg))
    for i in range(len(acts)):
        _, g = _np_loss_grad(
            np.zeros(acts.shape[2]), acts[i], targets[i], REFERENCE[method][0], 1.0
        )
        np.testing.assert_allclose(
            v1[i], -LR * g / (np.abs(g) + 1.0), rtol=1e-4, atol=1e-7
        )
    # After k steps the kernel's loss is `multiview_loss` at the fitted v.
    cfg = multiview.method_config(method, steps=3)
    v3 = multiview.fit_loces(acts, targets, config=cfg)
    _, losses = fit.fit_one(
        acts[1],
        targets[1],
        config=dataclasses.replace(cfg, steps=4),
        return_losses=True,
    )
    ours = multiview.multiview_loss(v3[1], acts[1], targets[1], config=cfg)
    np.testing.assert_allclose(losses[3], ours, rtol=1e-5)


def test_identical_views_equal_the_single_view_fit_with_eps_over_n():
    # Summing n identical views scales the gradient by n; Adam divides it out,
    # except in eps: the trajectory is the single-view one with eps / n.
    acts, targets = _random_case(n=2, v=1)
    n = 4
    many = lambda x: np.repeat(x, n, axis=1)
    cfg = multiview.method_config("loce", loss_scale=1.0, eps=2.0)
    multi = np.asarray(multiview.fit_loces(many(acts), many(targets), config=cfg))
    single = multiview.fit_loces(
        acts, targets, config=dataclasses.replace(cfg, eps=cfg.eps / n)
    )
    np.testing.assert_allclose(multi, single, rtol=2e-5, atol=1e-6)
    same_eps = np.asarray(multiview.fit_loces(acts, targets, config=cfg))
    assert np.abs(multi - same_eps).max() > 1e-2  # so the test can tell
    # With the reference's eps = 1e-8 the two fits agree to eps's effect
    # (gradients ~1e-5 at the 512**-2 scale on this 9 x 9 grid: ~0.5 %).
    ref = multiview.method_config("loce")
    np.testing.assert_allclose(
        multiview.fit_loces(many(acts), many(targets), config=ref),
        multiview.fit_loces(acts, targets, config=ref),
        rtol=1e-2,
    )


def test_vmap_over_objects_equals_a_loop():
    acts, targets = _random_case(n=5, v=3)
    cfg = multiview.method_config("loce_proper_bce")
    out = np.asarray(multiview.fit_loces(acts, targets, config=cfg, micro_batch=2))
    one = jax.jit(fit.fit_one, static_argnames="config")
    loop = [one(acts[i], targets[i], config=cfg) for i in range(len(acts))]
    np.testing.assert_allclose(out, np.stack(loop), rtol=1e-5, atol=1e-6)
    whole = multiview.fit_loces(acts, targets, config=cfg, micro_batch=None)
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    assert jax.device_count() == 8
    acts, targets = _random_case(n=6, v=2)  # 6 objects pad to 8
    mesh = parallel.make_mesh()
    out = multiview.fit_loces(acts, targets, mesh=mesh)
    assert out.shape == (6, acts.shape[2])
    np.testing.assert_allclose(
        out, multiview.fit_loces(acts, targets), rtol=1e-5, atol=1e-6
    )


def test_net2vec_treats_every_view_as_a_sample():
    # Independent loop: views in object-major order, epochs repeated, batches
    # of 4 straddling epochs, each step a fresh AdamW's first step.
    acts, targets = _random_case(n=3, v=2)
    cfg = multiview.method_config("net2vec", eps=1e-3, loss_scale=1.0)
    out = multiview.fit_net2vec(acts, targets, config=cfg, batch_size=4, epochs=2)
    flat_a = acts.reshape((-1,) + acts.shape[2:])
    flat_t = targets.reshape((-1,) + targets.shape[2:])
    order = np.tile(np.arange(len(flat_a)), 2)
    v = np.zeros(acts.shape[2])
    for start in range(0, len(order), 4):
        idx = order[start : start + 4]
        g = np.mean(
            [_np_loss_grad(v, flat_a[j : j + 1], flat_t[j : j + 1], "net2vec", 1.0)[1]
             for j in idx], axis=0,
        )  # fmt: skip
        v = v - LR * (g / (np.abs(g) + cfg.eps) + cfg.weight_decay * v)
    np.testing.assert_allclose(out, v, rtol=1e-4, atol=1e-5)
    shuffled = multiview.fit_net2vec(
        acts, targets, config=cfg, batch_size=4, epochs=2, key=jax.random.key(0)
    )
    assert shuffled.shape == out.shape and np.all(np.isfinite(shuffled))


def _torch_get_loces(acts, targets, per_batch, steps, spread_once):
    """The reference `_get_loces` (num_acts_per_loce = V), re-typed in torch."""
    torch = pytest.importorskip("torch")
    n, v, c = acts.shape[:3]
    out = []
    for i in range(0, n, per_batch):
        a = torch.tensor(acts[i : i + per_batch].reshape((-1,) + acts.shape[2:]))
        t = torch.tensor(
            targets[i : i + per_batch].reshape((-1, 1) + targets.shape[2:])
        )
        up = torch.nn.functional.interpolate(
            a, size=t.shape[-2:], mode="bilinear", align_corners=False
        )
        b, k = a.shape[0], a.shape[0] // v
        alpha = (1.0 - (t > 0).float().mean(dim=(-1, -2))).view(b, 1, 1, 1)
        loces = torch.zeros(k, c, 1, 1, requires_grad=True)
        spread = lambda x=loces: (
            x.unsqueeze(1).expand(-1, v, -1, -1, -1).reshape(-1, c, 1, 1)
        )
        spread_0 = spread()
        opt = torch.optim.AdamW([loces], lr=0.1)
        for _ in range(steps):
            s = torch.sigmoid(
                (up * (spread_0 if spread_once else spread())).sum(1, keepdim=True)
            )
            per_map = (
                -torch.sum(
                    alpha * t * s + (1 - alpha) * (1 - t) * (1 - s), dim=[1, 2, 3]
                )
                / b
            )
            opt.zero_grad()
            per_map.mean().backward()
            opt.step()
        out.append(loces.detach().reshape(k, c).numpy())
    return np.concatenate(out)


def test_against_the_reference_optimiser_in_torch_and_its_stale_spread():
    # 3 objects x 2 views in batches of 4 maps: objects 0 and 1 share a batch
    # (stale spread in the reference), object 2 is alone (a view: correct).
    acts, targets = _random_case(n=3, v=2)
    cfg = multiview.method_config("loce", reference_batch=4, steps=10)
    np.testing.assert_array_equal(multiview.stale_objects(3, 2, 4), [1, 1, 0])
    summed = _torch_get_loces(acts, targets, 2, 10, spread_once=False)
    np.testing.assert_allclose(
        multiview.fit_loces(acts, targets, config=cfg), summed, atol=2e-4
    )
    faithful = _torch_get_loces(acts, targets, 2, 10, spread_once=True)
    stale = np.asarray(
        multiview.fit_loces(acts, targets, config=cfg, stale_spread=True)
    )
    np.testing.assert_allclose(stale, faithful, atol=2e-4)
    np.testing.assert_allclose(
        np.abs(stale[:2]), 0.1 * (1 - 0.999**10) / 0.001, rtol=1e-3
    )
    assert np.abs(stale[:2] - summed[:2]).max() > 0.1  # the quirk matters


def test_gloce_is_the_plain_mean_of_the_loces():
    acts, targets = _random_case(n=5, v=2)
    labels = np.array([2, 0, 2, 0, 2])
    classes, means, loces = multiview.fit_gloces(acts, targets, labels)
    np.testing.assert_array_equal(classes, [0, 2])
    loces = np.asarray(loces)
    np.testing.assert_allclose(means[0], loces[[1, 3]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(means[1], loces[[0, 2, 4]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(loces, multiview.fit_loces(acts, targets), atol=1e-7)


def test_bad_inputs_are_rejected():
    acts, targets = _random_case(n=2, v=2)
    with pytest.raises(ValueError, match=r"\(N, V, C, h, w\)"):
        multiview.fit_loces(acts[:, 0], targets[:, 0])
    with pytest.raises(ValueError, match="same"):
        multiview.fit_net2vec(acts, targets[:, :1])
    bad = acts.copy()
    bad[1, 0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        multiview.fit_loces(bad, targets)
    with pytest.raises(NonFiniteError):
        multiview.fit_net2vec(bad, targets)


# -- planted background bias ------------------------------------------------

C, H, GRID, V = 12, 10, (20, 20), 8


def _planted(n=8, seed=0):
    """Feature maps (N, H, W, C): a shared offset g everywhere, the concept u
    on the object, a water direction on every training background; the pool
    holds 8 other background directions, the test background is "road"."""
    rng = np.random.default_rng(seed)
    g, u, water, road, *others = np.linalg.qr(rng.normal(size=(C, C)))[0].T
    masks = _blobs(rng, n, H)
    noise = lambda *s: 0.2 * rng.normal(size=s + (C,))
    obj, m = g + 1.5 * u, masks[..., None]
    images = m * obj + (1 - m) * (g + 2 * water) + noise(n, H, H)
    pool = np.stack([g + 2 * others[k % 8] + noise(H, H) for k in range(16)])
    road_bg = g + 2 * road + noise(n, H, H)
    f32 = lambda x: np.asarray(x, np.float32)
    return f32(images), masks, f32(pool), f32(road_bg), water


def test_randomised_views_remove_a_planted_background_direction():
    images, masks, pool, road_bg, water = _planted()
    key = jax.random.key(0)
    chw = lambda views: jnp.moveaxis(views, -1, 2)  # (N, V, H, W, C) -> NVCHW
    vanilla = chw(paste.make_views(images, masks, None, key, "vanilla", 1))
    rand = chw(paste.make_views(images, masks, pool, key, "full", V))
    t1 = multiview.grid_targets(masks[:, None], GRID)
    tv = multiview.grid_targets(np.repeat(masks[:, None], V, 1), GRID)
    on_road = jnp.moveaxis(jax.vmap(paste.paste)(images, masks, road_bg), -1, 1)
    t = t1[:, 0]

    def own_ious(loces, acts):
        z = jax.vmap(lambda v, a: projection.logits(v, a, GRID))(loces, acts)
        return float(jnp.mean(bias.iou(jax.nn.sigmoid(z), t)))

    def cos_water(e):
        e = np.asarray(e)
        return e @ water / np.linalg.norm(e, axis=-1)

    for method in ("loce", "loce_proper_bce"):
        lv = multiview.fit_loces(vanilla, t1, method=method)
        lr = multiview.fit_loces(rand, tv, method=method)
        # Vanilla LoCEs lean on "not water" and fail on the road...
        assert cos_water(lv).mean() < -0.4
        assert own_ious(lv, on_road) < own_ious(lv, vanilla[:, 0]) - 0.25
        # ...randomised ones ignore water and keep working on the road.
        assert np.abs(cos_water(lr)).mean() < 0.1
        assert own_ious(lr, on_road) > own_ious(lv, on_road) + 0.2
    for method in ("net2vec", "net2vec_proper_bce"):
        n2v = dict(method=method, batch_size=16, key=key)
        nv = multiview.fit_net2vec(vanilla, t1, **n2v)
        nr = multiview.fit_net2vec(rand, tv, **n2v)
        road_iou = lambda w: float(bias.view_ious(w[None], on_road, t).mean())
        # Few sign-like steps (fresh AdamW per batch): a looser bound.
        assert cos_water(nv) < -0.4 and abs(cos_water(nr)) < 0.25
        assert road_iou(nr) > road_iou(nv) + 0.15
