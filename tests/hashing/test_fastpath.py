"""The fast paths of the hashing trainers against plain references: the
hand-written multi-view backward (`hashing.multiview`), the DUCH step built
on it, Adam with packed moments (`hashing.optim`) and batches gathered on
the device (`hashing.feed`)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcxai import parallel
from jaxcxai.hashing import chnr, duch, feed, losses, multiview, optim
from jaxcxai.hashing.models import HashNet

FAST = {"xla_backend_optimization_level": 0}


def _f64(tree):
    def widen(a):
        dtype = jnp.asarray(a).dtype
        if jnp.issubdtype(dtype, jnp.complexfloating):  # packed Adam moments
            return jnp.asarray(a, jnp.complex128)
        if jnp.issubdtype(dtype, jnp.floating):
            return jnp.asarray(a, jnp.float64)
        return a

    return jax.tree.map(widen, tree)


def _flax_views(net, params, stats, xs):
    """Reference: one Flax training-mode call per view, statistics chained."""
    outs = []
    for x in xs:
        out, upd = net.apply(
            {"params": params, "batch_stats": stats}, x, train=True,
            mutable=["batch_stats"],
        )  # fmt: skip
        outs.append(out)
        stats = upd["batch_stats"]
    return outs, stats


def test_hashnet_views_match_flax_autodiff_in_float64():
    with jax.enable_x64(True):
        ks = jax.random.split(jax.random.key(0), 8)
        img_net, txt_net = HashNet(8, 64), HashNet(8, 64)
        vi = _f64(img_net.init(ks[0], jnp.zeros((2, 12))))
        vt = _f64(txt_net.init(ks[1], jnp.zeros((2, 20))))
        # Non-trivial BatchNorm affine parameters.
        vi["params"]["bn"]["scale"] = 1 + 0.3 * jax.random.normal(ks[6], (64,))
        vt["params"]["bn"]["bias"] = 0.2 * jax.random.normal(ks[7], (64,))
        x1, x2 = (3 + jax.random.normal(k, (16, 12), jnp.float64) for k in ks[2:4])
        y = jax.random.normal(ks[4], (16, 20), jnp.float64)
        w = jax.random.normal(ks[5], (3, 16, 8), jnp.float64)

        def loss(a, b, c):  # uses every code non-linearly
            return jnp.sum(w[0] * a) + jnp.sum(w[1] * b**2) + jnp.sum(w[2] * jnp.sin(c))

        def reference(pi, pt):
            (a, b), si = _flax_views(img_net, pi, vi["batch_stats"], (x1, x2))
            (c,), st = _flax_views(txt_net, pt, vt["batch_stats"], (y,))
            return loss(a, b, c), (si, st)

        def ours(pi, pt):
            ((a, b), (c,)), stats = multiview.hashnet_views((pi, pt), ((x1, x2), (y,)))
            return loss(a, b, c), stats

        args = (vi["params"], vt["params"])
        (l_ref, (si, st)), g_ref = jax.value_and_grad(reference, (0, 1), True)(*args)
        (l_ours, stats), g_ours = jax.value_and_grad(ours, (0, 1), True)(*args)
        np.testing.assert_allclose(l_ours, l_ref, rtol=1e-12)

        # Batch statistics -> the same running statistics as the Flax calls.
        def running(r, view_stats):
            for mean, var in view_stats:
                unbiased = var * 16 / 15
                r = {"mean": 0.9 * r["mean"] + 0.1 * mean,
                     "var": 0.9 * r["var"] + 0.1 * unbiased}  # fmt: skip
            return r

        got_i = running(vi["batch_stats"]["bn"], stats[0])
        got_t = running(vt["batch_stats"]["bn"], stats[1])
        for got, want in [(got_i, si["bn"]), (got_t, st["bn"])]:
            for k in ("mean", "var"):
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)

        for gr, go in zip(g_ref, g_ours):
            for path, a in jax.tree_util.tree_flatten_with_path(gr)[0]:
                b = go
                for p in path:
                    b = b[p.key]
                name = jax.tree_util.keystr(path)
                if name == "['fc1']['dense']['bias']":
                    # b1 cancels in A - mean: exactly 0 here, rounding noise
                    # in autodiff.
                    assert np.all(np.asarray(b) == 0.0)
                    assert np.abs(a).max() < 1e-12
                else:
                    np.testing.assert_allclose(
                        b, a, rtol=1e-9, atol=1e-13, err_msg=name
                    )


def _flax_forward_views(state, hash_params, batch, txt2_is_txt1):
    """The DUCH forward of the reference: four Flax calls in order x, x', y, y'."""
    (hi1, hi2), s_img = _flax_views(
        state.img_net, hash_params["img"], state.batch_stats["img"],
        (batch["img"], batch["img_aug"]),
    )  # fmt: skip
    y2 = batch["txt"] if txt2_is_txt1 else batch["txt_aug"]
    (ht1, ht2), s_txt = _flax_views(
        state.txt_net, hash_params["txt"], state.batch_stats["txt"], (batch["txt"], y2)
    )
    return (hi1, hi2, ht1, ht2), {"img": s_img, "txt": s_txt}


def _run_steps(step, state, batches, key):
    """Jits `step` and runs it over `batches`: (final state, losses)."""
    step = jax.jit(step)
    out = []
    for b in batches:
        state, metrics = step(state, b, key)
        out.append(float(metrics["loss"]))
    return state, out


def _patch_plain_paths(monkeypatch) -> set:
    """Patches the plain references in for the fast paths; returns the set of
    names the traced steps actually called (filled while tracing)."""
    used = set()

    def track(name, fn):
        def wrapped(*args, **kwargs):
            used.add(name)
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(
        duch, "forward_views", track("forward_views", _flax_forward_views)
    )
    monkeypatch.setattr(losses, "ntxent_many", track("ntxent_many", _naive_ntxent_many))
    untied = lambda fn, codes, tied: jax.value_and_grad(fn, has_aux=True)(codes)
    monkeypatch.setattr(
        duch, "loss_and_code_grads", track("loss_and_code_grads", untied)
    )
    return used


def _f64_batches(seed: int, labels: bool) -> list:
    """Three float64 batches of 24 rows (12-d images, 20-d captions) over 48
    training rows: rows 0-23, 24-47, then 0-23 again."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in (0, 24, 0):
        b = {"idx": np.arange(i, i + 24, dtype=np.int32)}
        for name, dim in (("img", 12), ("img_aug", 12), ("txt", 20), ("txt_aug", 20)):
            b[name] = rng.normal(size=(24, dim))
        if labels:
            b["labels"] = rng.integers(0, 3, 24)
        batches.append(b)
    return batches


def _check_fast_equals_plain(monkeypatch, new_step, state0, batches):
    """Three steps on the fast paths, then (patched in) on the plain ones, in
    float64: equal losses and equal params, statistics and optimizer states.

    `new_step()` builds a fresh step function. Ours runs (and is traced)
    before the plain paths are patched in, and the traced reference must
    really have called them.
    """
    state0 = state0.replace(
        params=_f64(state0.params),
        batch_stats=_f64(state0.batch_stats),
        opt_state=_f64(state0.opt_state),
    )
    key = jax.random.key(5)
    ours, l_ours = _run_steps(new_step(), state0, batches, key)
    used = _patch_plain_paths(monkeypatch)
    ref, l_ref = _run_steps(new_step(), state0, batches, key)
    assert used == {"forward_views", "ntxent_many", "loss_and_code_grads"}
    np.testing.assert_allclose(l_ours, l_ref, rtol=1e-10)
    tree = lambda s: (s.params, s.batch_stats, s.opt_state)
    flat = jax.tree_util.tree_flatten_with_path(tree(ref))[0]
    for (path, a), b in zip(flat, jax.tree.leaves(tree(ours))):
        np.testing.assert_allclose(
            b, a, rtol=1e-8, atol=1e-11, err_msg=jax.tree_util.keystr(path)
        )


@pytest.mark.parametrize("txt2_is_txt1", [True, False])
def test_duch_step_matches_the_autodiff_step_in_float64(monkeypatch, txt2_is_txt1):
    hyper = duch.DuchHyper(
        bits=8, hidden=32, lr=1e-3, disc_lr=1e-3, txt2_is_txt1=txt2_is_txt1
    )
    with jax.enable_x64(True):
        state0 = duch.init_state(jax.random.key(0), hyper, 12, 20, 48)
        batches = _f64_batches(seed=0, labels=False)
        new_step = lambda: duch.make_train_step.__wrapped__(hyper)
        _check_fast_equals_plain(monkeypatch, new_step, state0, batches)


def _naive_ntxent_many(pairs, weights=None, *, tau, subtract_e, reduce_sum):
    """Plain NT-Xent per pair on the full (2N, 2N) matrix (`forward_orig`)."""
    out = []
    for (a, b), w in zip(pairs, weights or [None] * len(pairs)):
        norm = lambda v: v / jnp.linalg.norm(v, axis=1, keepdims=True)
        an, bn = norm(a), norm(b)
        z = jnp.concatenate([an, bn])
        sim = z @ z.T / tau
        pos = jnp.tile(jnp.sum(an * bn, axis=1) / tau, 2)
        if subtract_e:
            den = jnp.maximum(jnp.sum(jnp.exp(sim), axis=1) - math.e, 1e-6)
            rows = jnp.log(den + 1e-6) - pos
        else:
            eye = jnp.eye(sim.shape[0], dtype=bool)
            rows = jax.nn.logsumexp(jnp.where(eye, -jnp.inf, sim), axis=1) - pos
        if w is not None:
            rows = rows * jnp.tile(jax.lax.stop_gradient(w), 2)
        out.append(jnp.sum(rows) if reduce_sum else jnp.mean(rows))
    return out


@pytest.mark.parametrize("phase", ["meta", "main"])
@pytest.mark.parametrize("txt2_is_txt1", [True, False])
def test_chnr_steps_match_plain_references_in_float64(monkeypatch, phase, txt2_is_txt1):
    """CHNR's steps on the fast paths (multi-view backward, shared NT-Xent
    blocks, tied text codes) against the same steps on plain ones: Flax
    autodiff per view, NT-Xent on the full matrix per pair, untied codes."""
    hyper = chnr.ChnrHyper(
        bits=8, hidden=32, lr=1e-3, det_lr=1e-3, contrastive_weights=(1.0, 0.5, 0.25),
        beta=0.01, txt2_is_txt1=txt2_is_txt1,
    )  # fmt: skip
    make = chnr.make_meta_step if phase == "meta" else chnr.make_main_step
    with jax.enable_x64(True):
        state0 = chnr.init_state(jax.random.key(0), hyper, 12, 20, 48)
        batches = _f64_batches(seed=1, labels=True)
        new_step = lambda: make.__wrapped__(hyper)
        _check_fast_equals_plain(monkeypatch, new_step, state0, batches)


@pytest.mark.parametrize("one_caption", [True, False])
def test_fed_step_equals_the_step_on_the_host_batch(one_caption):
    hyper = duch.DuchHyper(bits=8, hidden=16, lr=1e-3, disc_lr=1e-3)
    state = jax.device_get(duch.init_state(jax.random.key(0), hyper, 12, 20, 64))
    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    part = {"img": f(64, 12), "img_aug": f(64, 12), "txt": f(64, 20),
            "txt_all": f(64, 3, 20), "txt_aug_all": f(64, 3, 20),
            "buffer_idx": rng.permutation(64)}  # fmt: skip
    layout = feed.BatchLayout(one_caption=one_caption)
    pos = rng.permutation(64)[:32].astype(np.int32)
    off = None if one_caption else rng.integers(0, 3, 32).astype(np.int32)
    host = feed.take_batch(part, pos, off, layout)
    assert set(host) == {"idx", "img", "img_aug", "txt"}
    np.testing.assert_array_equal(host["idx"], part["buffer_idx"][pos])
    want_txt = part["txt"][pos] if one_caption else part["txt_all"][pos, off]
    np.testing.assert_array_equal(host["txt"], want_txt)

    key = jax.random.key(1)
    step = duch.make_train_step(hyper)
    want, m_want = jax.jit(step, compiler_options=FAST)(state, host, key)
    # One device, as train/hashing.py uses it (module docstring of `feed`).
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    repl = parallel.replicated_sharding(mesh)
    arrays = feed.resident_arrays(part, layout, mesh)
    fed = jax.jit(
        feed.make_fed_step(step, layout, mesh),
        out_shardings=(repl, repl),
        compiler_options=FAST,
    )
    got, m_got = fed(parallel.replicate(state, mesh), arrays, pos, off, key)
    np.testing.assert_allclose(m_got["loss"], m_want["loss"], rtol=1e-5)
    tree = lambda s: (s.params, s.batch_stats)
    flat = jax.tree_util.tree_flatten_with_path(tree(want))[0]
    for (path, a), b in zip(flat, jax.tree.leaves(tree(got))):
        name = jax.tree_util.keystr(path)
        # D_h's first bias feeds a BatchNorm: its gradient is rounding noise,
        # which Adam scales to steps of +-lr (these move only running means).
        noisy = "disc" in name and ("bias" in name or "mean" in name)
        tol = 2 * hyper.disc_lr if noisy else 1e-6
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=tol, err_msg=name)


def test_take_batch_names_a_missing_caption_index():
    part = {"img": np.zeros((4, 2)), "img_aug": np.zeros((4, 2)),
            "txt_all": np.zeros((4, 3, 2)), "buffer_idx": np.arange(4)}  # fmt: skip
    with pytest.raises(ValueError, match="off"):
        feed.take_batch(part, np.arange(2), None, feed.BatchLayout(one_caption=False))


@pytest.mark.parametrize("b1, b2, wd", [(0.9, 0.999, 5e-4), (0.5, 0.9, 1e-4)])
def test_packed_adam_equals_optax_adam(b1, b2, wd):
    """Packed moments: the same parameters and moments as optax's Adam with
    coupled L2, step for step (float64 to 1e-13; float32 to rounding: XLA
    may contract a * b + c into one fused multiply-add in either)."""
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float64, 1e-13), (np.float32, 1e-5)):
        with jax.enable_x64(dtype == np.float64):
            params = {"w": rng.normal(size=(7, 5)), "b": rng.normal(size=(5,))}
            cast = functools.partial(jnp.asarray, dtype=dtype)
            params = jax.tree.map(cast, params)
            ref_tx = optax.chain(
                optax.add_decayed_weights(wd),
                optax.scale_by_adam(b1=b1, b2=b2, eps=1e-8),
                optax.scale_by_learning_rate(1e-2),
            )
            ours_tx = optim.coupled_adam(1e-2, wd, b1, b2)
            p_ref, p_ours = params, params
            s_ref, s_ours = ref_tx.init(params), ours_tx.init(params)
            for _ in range(6):
                g = {k: cast(rng.normal(size=a.shape)) for k, a in params.items()}
                u, s_ref = jax.jit(ref_tx.update)(g, s_ref, p_ref)
                p_ref = optax.apply_updates(p_ref, u)
                u, s_ours = jax.jit(ours_tx.update)(g, s_ours, p_ours)
                p_ours = optax.apply_updates(p_ours, u)
            for k in params:
                assert p_ours[k].dtype == dtype
                np.testing.assert_allclose(p_ours[k], p_ref[k], rtol=tol, atol=tol)
                packed = s_ours[1].moments[k]
                np.testing.assert_allclose(
                    packed.real, s_ref[1].mu[k], rtol=tol, atol=tol * 1e-2
                )
                np.testing.assert_allclose(packed.imag, s_ref[1].nu[k], rtol=tol)
            assert int(s_ours[1].count) == 6
