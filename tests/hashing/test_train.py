"""DUCH/CHNR models, sharded steps, quirk flags and the train script."""

import json
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import parallel
from jaxcxai.hashing import chnr, detector, duch, evaluation, feed, models, schedule
from jaxcxai.hashing import data as hdata
from tests.paths import FIXTURES, ROOT
from train import hashing as trainer

# Less optimised XLA programs compile about twice as fast; the checks compare
# programs compiled alike or need no speed.
FAST = {"xla_backend_optimization_level": 0}

CONFIGS = os.path.join(ROOT, "configs")


def _check_uniform(x, bound):
    """Values inside U(-bound, bound), with its moments (5 sigma tolerances)."""
    x = np.asarray(x, np.float64)
    n = x.size
    assert np.abs(x).max() <= bound
    if n >= 1000:
        assert np.abs(x).max() > 0.99 * bound
        # sample variance of U: relative std sqrt(0.8 / n)
        rel = 5 * math.sqrt(0.8 / n)
        np.testing.assert_allclose(x.var(), bound**2 / 3, rtol=rel)
        assert abs(x.mean()) < 5 * bound / math.sqrt(3 * n)


def test_pytorch_default_initialisation():
    net = models.HashNet(bits=64, hidden=1024)
    v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((2, 300)))
    p = v["params"]
    for layer, fan_in in (("fc1", 300), ("fc2", 1024)):
        _check_uniform(p[layer]["dense"]["kernel"], 1 / math.sqrt(fan_in))
        _check_uniform(p[layer]["dense"]["bias"], 1 / math.sqrt(fan_in))
    np.testing.assert_array_equal(p["bn"]["scale"], 1.0)
    np.testing.assert_array_equal(p["bn"]["bias"], 0.0)
    np.testing.assert_array_equal(v["batch_stats"]["bn"]["mean"], 0.0)
    np.testing.assert_array_equal(v["batch_stats"]["bn"]["var"], 1.0)
    d = jax.jit(models.HashDiscriminator(bits=32).init)(
        jax.random.key(1), jnp.zeros((2, 32))
    )
    _check_uniform(d["params"]["fc1"]["dense"]["kernel"], 1 / math.sqrt(32))
    _check_uniform(d["params"]["fc2"]["dense"]["kernel"], 1 / math.sqrt(64))
    det = jax.jit(models.NoiseDetector().init)(jax.random.key(2), jnp.zeros((2, 80)))
    assert det["params"]["fc3"]["dense"]["kernel"].shape == (80, 80)
    _check_uniform(det["params"]["out"]["dense"]["bias"], 1 / math.sqrt(80))


def test_batchnorm_matches_pytorch_semantics():
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    bn = models.TorchBatchNorm()
    v = bn.init(jax.random.key(0), x, train=False)
    out, upd = bn.apply(v, x, train=True, mutable=["batch_stats"])
    mu, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(out, (x - mu) / np.sqrt(var + 1e-5), atol=1e-5)
    stats = jax.tree.map(np.asarray, upd["batch_stats"])
    np.testing.assert_allclose(stats["mean"], 0.1 * mu, atol=1e-6)
    # Running variance from the unbiased batch variance (n / (n - 1)).
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.var(0, ddof=1), atol=1e-6)
    ev = bn.apply({"params": v["params"], "batch_stats": stats}, x, train=False)
    np.testing.assert_allclose(
        ev, (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5), atol=1e-5
    )


def _batch(rng, idx, di=12, dt=20):
    n = len(idx)
    f = lambda d: rng.normal(size=(n, d)).astype(np.float32)
    return {"idx": np.asarray(idx, np.int32), "img": f(di), "img_aug": f(di),
            "txt": f(dt), "txt_aug": f(dt)}  # fmt: skip


TINY = duch.DuchHyper(bits=8, hidden=16, lr=1e-3, disc_lr=1e-3)


@pytest.fixture(scope="module")
def tiny_state():
    """One small DUCH state (12-d images, 20-d captions, 64 samples); the
    init is built once, it costs seconds of compilation."""
    return jax.device_get(
        jax.jit(duch.init_state, static_argnums=(1, 2, 3, 4))(
            jax.random.key(0), TINY, 12, 20, 64
        )
    )


@pytest.mark.multidevice
def test_sharded_duch_step_equals_single_device(tiny_state):
    hyper, state = TINY, tiny_state
    rng = np.random.default_rng(0)
    batches = [_batch(rng, np.arange(32)), _batch(rng, np.arange(32, 64))]
    key = jax.random.key(3)
    step = duch.make_train_step(hyper)

    single, m_single = state, []
    for b in batches:
        single, m = jax.jit(step, compiler_options=FAST)(single, b, key)
        m_single.append(m)

    mesh = parallel.make_mesh()
    assert mesh.shape["data"] == 8
    repl = parallel.replicated_sharding(mesh)
    sharded, m_sharded = parallel.replicate(state, mesh), []
    sharded_step = jax.jit(step, out_shardings=(repl, repl), compiler_options=FAST)
    for b in batches:
        placed = parallel.shard_batch(b, mesh)
        assert len(placed["img"].sharding.device_set) == 8
        sharded, m = sharded_step(sharded, placed, key)
        m_sharded.append(m)

    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    jax.tree.map(close, m_single, m_sharded)
    tree = lambda s: (s.params, s.batch_stats, s.opt_state)
    flat = jax.tree_util.tree_flatten_with_path(tree(single))[0]
    for (path, a), b in zip(flat, jax.tree.leaves(tree(sharded))):
        name = jax.tree_util.keystr(path)
        if ("fc1" in name and "bias" in name and "mu" not in name
                and "nu" not in name) or "'mean'" in name:  # fmt: skip
            # A bias feeding BatchNorm has an exactly zero gradient; Adam
            # turns its rounding noise into steps of +-lr, which move only the
            # running means (train-mode outputs subtract the batch mean).
            assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 2 * 2e-3, name
        else:
            close(a, b)
    assert int(sharded.step) == 2


def test_txt2_is_txt1_feeds_the_caption_twice(tiny_state):
    state = tiny_state
    b = _batch(np.random.default_rng(1), np.arange(10))
    p = {"img": state.params["img"], "txt": state.params["txt"]}
    (hi1, hi2, ht1, ht2), stats = duch.forward_views(state, p, b, True)
    np.testing.assert_array_equal(ht1, ht2)
    # Running statistics as after two sequential BatchNorm calls on y.
    var = {"params": p["txt"], "batch_stats": state.batch_stats["txt"]}
    for _ in range(2):
        _, upd = state.txt_net.apply(var, b["txt"], train=True, mutable=["batch_stats"])
        var = {"params": p["txt"], "batch_stats": upd["batch_stats"]}
    jax.tree.map(
        lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7),
        stats["txt"],
        var["batch_stats"],
    )
    (_, _, ft1, ft2), _ = duch.forward_views(state, p, b, False)
    np.testing.assert_array_equal(ft1, ht1)
    assert np.abs(np.asarray(ft2 - ft1)).max() > 1e-3  # y' is used


@pytest.mark.parametrize("on_text", [True, False])
def test_adversarial_term_side(on_text, tiny_state):
    hyper = duch.DuchHyper(
        bits=8, hidden=16, beta=0.0, gamma=0.0, contrastive_weights=(0, 0, 0),
        adv_on_text=on_text,
    )  # fmt: skip
    state = tiny_state
    codes = tuple(
        jnp.tanh(jax.random.normal(jax.random.key(i), (6, 8))) for i in range(4)
    )
    d = state.params["disc"], state.batch_stats["disc"]

    def adv(c):
        return duch._hash_loss(c, state, *d, jnp.zeros((6, 8)), hyper)[0]

    grads = jax.jit(jax.grad(adv))(codes)
    img_norm = float(jnp.abs(grads[0]).sum() + jnp.abs(grads[1]).sum())
    txt_norm = float(jnp.abs(grads[2]).sum() + jnp.abs(grads[3]).sum())
    assert (img_norm == 0.0) == on_text and (txt_norm == 0.0) != on_text


def test_learning_rate_rule():
    faithful = duch.DuchHyper()
    fixed = duch.DuchHyper(lr_decay_after_epoch0=False)

    def schedule(hyper):
        lr, out = 1e-4, []
        for epoch in range(100):
            out.append(lr)  # lr used during `epoch`
            lr = float(duch.decayed_lr(jnp.float32(lr), epoch, hyper))
        return np.asarray(out)

    lr = schedule(faithful)  # the reference's x0.8 decay after epochs 0 and 50
    np.testing.assert_allclose(lr[0], 1e-4, rtol=1e-6)
    np.testing.assert_allclose(lr[1:51], 8e-5, rtol=1e-6)
    np.testing.assert_allclose(lr[51:], 6.4e-5, rtol=1e-6)
    lr = schedule(fixed)
    np.testing.assert_allclose(lr[:50], 1e-4, rtol=1e-6)
    np.testing.assert_allclose(lr[50:], 8e-5, rtol=1e-6)


def _features(n=100, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % classes
    return {
        "image_features": rng.normal(3.0, 2.0, size=(n, 6)),
        "text_features": rng.normal(-1.0, 0.5, size=(n, 5, 4)),
        "labels": np.eye(classes)[codes],
        "json_split": hdata.json_like_split(codes),
    }


def test_data_quirks_standardisation_split_and_captions():
    f = _features()
    faithful = hdata.prepare_data(**f)
    fixed = hdata.prepare_data(
        **f, standardize_with_eval_rows=False, random_split=False
    )
    # (7) statistics over all rows vs over train rows only.
    rows = np.concatenate([faithful[s]["img"] for s in ("train", "query", "db")])
    np.testing.assert_allclose([rows.mean(), rows.std()], [0, 1], atol=1e-5)
    tr = fixed["train"]["img"]
    np.testing.assert_allclose([tr.mean(), tr.std()], [0, 1], atol=1e-5)
    assert abs(faithful["train"]["img"].mean()) > 1e-3
    # (8) reference split (50/10/40, seeded) vs the JSON split field.
    assert [len(faithful[s]["image_idx"]) for s in ("train", "query", "db")] == [
        50, 10, 40,
    ]  # fmt: skip
    js = f["json_split"]
    np.testing.assert_array_equal(
        fixed["query"]["image_idx"], np.flatnonzero(js == "test")
    )
    big = hdata.prepare_data(
        np.zeros((2100, 2)), np.zeros((2100, 2)), np.zeros(2100), standardize=False
    )
    np.testing.assert_array_equal(
        big["query"]["image_idx"][:10], [9, 15, 34, 38, 57, 62, 86, 97, 115, 137]
    )
    # (8) one caption per image: the i-th image of each subset takes the
    # caption at the seeded offset (0, 0, 2, 1, 1, ... for seed 42).
    raw = hdata.prepare_data(**f, standardize=False)
    t = f["text_features"]
    idx = raw["train"]["image_idx"]
    np.testing.assert_allclose(raw["train"]["txt"][2], t[idx[2], 2], rtol=1e-6)
    np.testing.assert_allclose(
        raw["query"]["txt"][3], t[raw["query"]["image_idx"][3], 1]
    )


def test_empty_splits_and_constant_features_are_named():
    # 4 rows: the seeded 50/10/40 split gives no query row.
    with pytest.raises(ValueError, match=r"empty split\(s\) \['query'\].*'query': 0"):
        hdata.prepare_data(**_features(n=4))
    f = _features()
    f["json_split"] = np.where(f["json_split"] == "test", "val", f["json_split"])
    with pytest.raises(ValueError, match=r"\['query'\] from the json_split"):
        hdata.prepare_data(**f, random_split=False)
    f = _features()
    f["text_features"] = np.ones_like(f["text_features"])
    with pytest.raises(ValueError, match="cannot standardise text_features"):
        hdata.prepare_data(**f)
    f["image_features"][3, 2] = np.nan
    with pytest.raises(ValueError, match="cannot standardise image_features"):
        hdata.prepare_data(**f)
    assert hdata.prepare_data(**f, standardize=False)["train"]["img"].shape[1] == 6


def test_caption_per_epoch_quirk_and_eval_schedule():
    data = hdata.prepare_data(**_features())["train"]
    data["buffer_idx"] = np.arange(len(data["img"]))
    cfg = _config("duch", "tiny")
    pos = np.arange(20)
    b = _host_batch(data, pos, 0, cfg)
    np.testing.assert_array_equal(b["txt"], data["txt"][pos])
    assert "txt_aug" not in b  # txt2_is_txt1: y is fed to both text views
    cfg.quirks.one_caption_per_image = False
    cfg.quirks.txt2_is_txt1 = False
    b0 = _host_batch(data, pos, 0, cfg)
    b1 = _host_batch(data, pos, 1, cfg)
    assert not np.allclose(b0["txt"], data["txt"][pos])
    assert not np.allclose(b0["txt"], b1["txt"])  # a fresh caption per epoch
    cfg = _config("duch", "ucm")
    every, epochs = cfg.eval.eval_every_epochs, cfg.train.epochs
    assert schedule.eval_epochs(epochs, every, cfg.quirks.eval_only_final) == {99}
    assert schedule.eval_epochs(epochs, every, False) == set(range(9, 100, 10))
    assert schedule.eval_epochs(epochs, every, True, meta_stop=5) == {4, 99}


def _host_batch(part, pos, epoch, cfg):
    one = bool(cfg.quirks.one_caption_per_image)
    off = schedule.caption_offsets(part, epoch, cfg.seed, one)
    layout = trainer.batch_layout(cfg, labels=False)
    return feed.take_batch(part, pos, None if off is None else off[pos], layout)


def test_map_quirk_reference_vs_truncated():
    # The reference `calc_map_k`: K = 2, relevance by rank [1, 0, 0, 0, 1] ->
    # 0.70 in the reference form, 0.5 truncated at K and normalised by min(K, R).
    q = np.ones((1, 4))
    db = np.ones((5, 4))
    for j in range(5):
        db[j, :j] = -1  # item j at Hamming distance j
    ql = np.array([[1.0, 0.0]])
    dl = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [1, 0]], np.float64)
    assert evaluation.map_at_k(q, db, ql, dl, 2, True) == pytest.approx(0.7)
    assert evaluation.map_at_k(q, db, ql, dl, 2, False) == pytest.approx(0.5)


def test_unseeded_quirk(tmp_path):
    cfg = _config("duch", "ucm")
    assert cfg.quirks.unseeded
    seed = schedule.run_seed(cfg.seed, True, str(tmp_path))
    assert schedule.run_seed(cfg.seed, True, str(tmp_path)) == seed  # kept
    assert schedule.run_seed(cfg.seed, False, str(tmp_path)) == cfg.seed


def test_chnr_set_quirks():
    f = _features(n=200, classes=4)
    train = hdata.prepare_data(**f)["train"]
    cfg = _config("chnr", "ucm")
    cfg.chnr.noise_prob = 0.5
    main, meta = trainer.chnr_sets(train, cfg)
    n_clean = int(0.3 * 100)
    ids = hdata.class_ids(train["labels"])
    np.testing.assert_array_equal(meta["buffer_idx"], np.arange(n_clean))  # (13)
    np.testing.assert_array_equal(meta["class_ids"], ids[:n_clean])  # (11)
    assert main["noisy"].any()
    for name in cfg.quirks:
        if name.startswith("chnr_"):
            cfg.quirks[name] = False
    main_fix, meta_fix = trainer.chnr_sets(train, cfg)
    clean = meta_fix["buffer_idx"]
    assert len(clean) == n_clean and not np.array_equal(clean, np.arange(n_clean))
    np.testing.assert_array_equal(meta_fix["class_ids"], ids[clean])
    # (12) the always-clean subset follows the clean fraction (0.3 > 0.2).
    assert main_fix["noisy"].sum() < main["noisy"].sum()
    assert not main_fix["noisy"][clean].any()
    noisy_rows = np.flatnonzero(main["noisy"])
    assert not np.allclose(main["txt"][noisy_rows], train["txt"][noisy_rows])


def test_chnr_fake_partners_and_dropout_in_weights():
    labels = jnp.asarray([0, 0, 1, 1, 2, 2, 2, 0])
    keys = jax.random.split(jax.random.key(0), 30)
    draw = jax.jit(
        jax.vmap(chnr.fake_partners, in_axes=(0, None, None)), static_argnums=1
    )
    for j in np.asarray(draw(keys[:5], 8, labels)):
        assert np.all(np.asarray(labels)[j] != np.asarray(labels))
    hits = np.asarray(draw(keys, 8, None))
    assert all((h != np.arange(8)).all() for h in hits)
    same = np.mean([np.asarray(labels)[h] == np.asarray(labels) for h in hits])
    assert same > 0.1  # labels unused: same-class partners occur
    det = models.NoiseDetector(hidden=16)
    state = duch.HashState(0, {}, {}, {}, None, None, det, None, None)
    z = jnp.ones((4, 32))
    p = jax.jit(det.init)(jax.random.key(0), z)["params"]
    detect = jax.jit(detector.detect, static_argnums=4)
    on = [detect(state, p, z, jax.random.key(k), True) for k in range(2)]
    off = [detect(state, p, z, jax.random.key(k), False) for k in range(2)]
    assert not np.allclose(on[0], on[1])  # (14) stochastic with dropout
    np.testing.assert_array_equal(off[0], off[1])


def _config(method, variant):
    from configs.cli import load_config

    cfg = load_config(os.path.join(CONFIGS, f"{method}.py:{variant}"))
    return cfg


def _np_map_reference(qb, rb, ql, rl, k):
    """Per-query loop of the reference mAP@K (`calc_map_k`), stable sort."""
    aps = []
    for q in range(len(qb)):
        rel = (ql[q] @ rl.T > 0).astype(float)
        total = int(rel.sum())
        if total == 0:
            aps.append(0.0)
            continue
        dist = 0.5 * (qb.shape[1] - qb[q] @ rb.T)
        ranks = np.flatnonzero(rel[np.argsort(dist, kind="stable")]) + 1
        t = min(k, total)
        aps.append(np.mean(np.arange(1, t + 1) / ranks[:t]))
    return float(np.mean(aps))


def _run(method, workdir, *overrides, cli=False):
    """A tiny run through `main` (the CLI) or `train_and_evaluate` (fast
    compiles); both write the same files."""
    argv = ["--config", os.path.join(CONFIGS, f"{method}.py:tiny")]
    argv += ["--workdir", str(workdir), *overrides]
    if cli:
        trainer.main(argv)
    else:
        from configs.cli import parse_args

        args = parse_args(argv)
        trainer.train_and_evaluate(args.config, args.workdir, compiler_options=FAST)
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


def _epochs_logged(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r["epoch"] for r in map(json.loads, f) if "epoch" in r]


def test_duch_script_learns_checkpoints_and_resumes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _run("duch", a, "--config.train.epochs=3")
    assert sorted(os.listdir(a / "ckpt"))  # checkpoints written
    resumed = _run("duch", a, "--config.train.epochs=5")
    assert _epochs_logged(a) == [0, 1, 2, 3, 4]  # epochs 3, 4 after resume
    straight = _run("duch", b, "--config.train.epochs=5")
    assert resumed["final"] == straight["final"]
    ca, cb = np.load(a / "codes.npz"), np.load(b / "codes.npz")
    for name in ("query_img", "query_txt", "db_img", "db_txt"):
        np.testing.assert_array_equal(ca[name], cb[name])
    assert set(resumed["quirks"]) >= {"txt2_is_txt1", "bert_mean_over_padding"}
    # Learned codes beat random codes by a wide margin (mAP@20, reference form).
    ql, dl = ca["query_labels"], ca["db_labels"]
    rng = np.random.default_rng(0)
    rand = [
        _np_map_reference(
            np.sign(rng.normal(size=(len(ql), 16))),
            np.sign(rng.normal(size=(len(dl), 16))),
            ql,
            dl,
            20,
        )
        for _ in range(5)
    ]
    for d in ("i2t", "t2i"):
        src, dst = {"i2t": ("img", "txt"), "t2i": ("txt", "img")}[d]
        ours = _np_map_reference(ca[f"query_{src}"], ca[f"db_{dst}"], ql, dl, 20)
        assert ours == pytest.approx(resumed["final"][f"map@20/{d}"], abs=1e-9)
        assert ours > max(rand) + 0.15, (d, ours, rand)


def test_chnr_script_runs_both_phases(tmp_path):
    # One device: the sharded step is covered above, and CI compiles less.
    res = _run("chnr", tmp_path, "--config.mesh.num_devices=1", cli=True)
    assert os.path.isfile(tmp_path / "config.json")
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if "epoch" in r]
    assert [("r1" in r, "weight_mean" in r) for r in train] == [
        (True, False), (True, False), (False, True), (False, True),
    ]  # fmt: skip
    assert 0.0 < train[-1]["weight_mean"] <= 1.0
    assert res["final"]["epoch"] == 3 and "map@5/avg" in res["best"]
    assert all(math.isfinite(v) for v in res["final"].values())


# The real UCM caption file of the hashing reference code (1.7 MB).
UCM_JSON = os.path.join(FIXTURES, "UCM.json")


@pytest.mark.skipif(not os.path.isfile(UCM_JSON), reason="UCM.json not available")
def test_h5_features_match_the_reference_loader(tmp_path):
    from jaxcxai.data import duch_h5

    rng = np.random.default_rng(0)
    paths = duch_h5.feature_paths(str(tmp_path), "UCM")
    for name, rows, key in [
        ("image", 2100, duch_h5.IMAGE_KEY),
        ("image_aug", 2100, duch_h5.IMAGE_KEY),
        ("caption", 10500, duch_h5.CAPTION_KEY),
        ("caption_aug", 10500, duch_h5.CAPTION_KEY),
    ]:
        arr = rng.normal(2.0, 3.0, size=(rows, 4)).astype(np.float32)
        duch_h5.write_h5_array(paths[name], key, arr)
    cfg = _config("duch", "ucm")
    cfg.data.h5_path, cfg.data.json_path = str(tmp_path), UCM_JSON
    data = hdata.prepare_data(**trainer.load_features(cfg))
    # The data module's own reference loader and subset builder.
    labels = _ucm_labels()
    feats = duch_h5.load_duch_features(paths, labels)
    split = duch_h5.split_indexes(2100)
    for part, idx in (("train", split.train), ("db", split.db)):
        ref = duch_h5.subset(feats, idx)
        ours = data[part]
        np.testing.assert_array_equal(ours["image_idx"], idx)
        for key in ("img", "img_aug", "txt", "txt_aug"):
            np.testing.assert_allclose(ours[key], ref[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ours["labels"].argmax(1), labels[idx])
    assert [len(data[p]["img"]) for p in ("train", "query", "db")] == [1050, 210, 840]


def _ucm_labels():
    from jaxcxai.data.captions import load_caption_json

    return load_caption_json(UCM_JSON).labels


def test_chnr_weighted_loss_and_threshold(tiny_state):
    rng = np.random.default_rng(3)
    codes = [np.tanh(rng.normal(size=(5, 8))) for _ in range(4)]
    target = np.sign(rng.normal(size=(5, 8)))
    w = rng.uniform(size=5)
    hyper = chnr.ChnrHyper(contrastive_weights=(1.0, 0.5, 0.25), beta=0.01)
    loss, _ = jax.jit(chnr._weighted_loss, static_argnums=3)(
        [jnp.asarray(c, jnp.float32) for c in codes], target, jnp.asarray(w), hyper
    )

    def rows(i, j):  # reference NT-Xent rows (`forward_orig`), float64
        z = np.concatenate([codes[i], codes[j]])
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        den = np.exp(z @ z.T).sum(1) - math.e
        pos = np.exp(np.tile(np.sum(z[:5] * z[5:], 1), 2))
        return -np.log(pos / (den + 1e-6))

    expected = (
        (rows(0, 2) * np.concatenate([w, w])).sum()
        + w.mean() * (0.5 * rows(0, 1).sum() + 0.25 * rows(2, 3).sum())
        + 0.01 * sum(((target - c) ** 2).sum() for c in codes)
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # After a meta epoch: theta = (mean r1 + mean f1) / 2, sums reset.
    meta = {"r1": 30.0, "r2": 1.0, "f1": 6.0, "f2": 1.0, "count": 40.0}
    stats = dict(tiny_state.batch_stats, meta=dict(meta, threshold=0.5))
    state = tiny_state.replace(batch_stats=jax.tree.map(jnp.asarray, stats))
    out = chnr.epoch_end(state, 3, hyper, True).batch_stats["meta"]
    np.testing.assert_allclose(out["threshold"], (30 / 40 + 6 / 40) / 2, rtol=1e-6)
    assert float(out["count"]) == 0.0 and float(out["r1"]) == 0.0
    kept = chnr.epoch_end(state, 3, hyper, False).batch_stats["meta"]
    assert float(kept["threshold"]) == 0.5


def test_real_data_config_without_features_warns_loudly():
    cfg = _config("duch", "ucm")
    assert cfg.data.source == "auto" and not cfg.data.h5_path
    cfg.data.synthetic.num_images, cfg.data.synthetic.image_dim = 40, 8
    cfg.data.synthetic.text_dim = 8
    with pytest.warns(UserWarning, match="SYNTHETIC features") as rec:
        feats = trainer.load_features(cfg)
    assert "UCM" in str(rec[0].message) and len(feats["labels"]) == 40
    cfg.data.source = "synthetic"  # the explicit choice is silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.load_features(cfg)
