"""The explanation study end to end: `eval.explain` on the tiny variant and the
main-job stage `explain`, with a tiny small_cnn trained once per test.

Reported numbers are recomputed independently from the saved arrays:
relevance mass and the pointing game in float64 NumPy (brute-force
distances), deletion and insertion AUC of one item by a NumPy loop over the
pixel order (the insertion start blurred by a hand-written Gaussian), the
saliency maps (trained and with `fc` re-drawn) by `jax.grad` of the
backbone, randomisation Spearman and seed Kendall by scipy, SSIM by
scikit-image, the tabular split, MLP probabilities and log-odds removal
shift by scikit-learn and NumPy, KernelSHAP by its efficiency identity and
TreeSHAP by shap's TreeExplainer directly.
"""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from scipy import stats as sps
from skimage.metrics import structural_similarity

from configs import cli
from configs import explain as explain_config
from eval import explain as eval_explain
from eval.stages import explain as stage_explain
from jaxcxai.attribution import run, scores, study, tabular
from jaxcxai.data import synthaerial
from jaxcxai.metrics.explanations import randomize_layers
from jaxcxai.training.backbone import load_trained
from tests.paths import CONFIGS

CONFIG = os.path.join(CONFIGS, "explain.py")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, tiny_backbone):
    """A main-job-like workdir holding backbones/small_cnn (tiny, 30 steps)."""
    root = tmp_path_factory.mktemp("job")
    tiny_backbone(root / "backbones" / "small_cnn")
    return root


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def _blur(x, sigma):
    """Separable Gaussian (radius round(4 sigma), edge padding), float64."""
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = np.asarray(x, np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(k[j] * np.take(p, np.arange(j, j + n), axis=axis)
                  for j in range(2 * r + 1))  # fmt: skip
    return out


def _curve_auc_np(f, x, m, t, steps, base, insertion):
    """Presence probability as pixels go by decreasing map value; trapezoid."""
    order = np.argsort(-m.reshape(-1), kind="stable")
    d = order.size
    vals = []
    for s in range(steps + 1):
        hidden = np.zeros(d, bool)
        hidden[order[: s * d // steps]] = True
        hidden = hidden.reshape(m.shape)[..., None]
        xi = np.where(hidden, x, base) if insertion else np.where(hidden, base, x)
        vals.append(_sigmoid(f(xi[None].astype(np.float32))[0][0, t]))
    return np.trapezoid(vals, dx=1.0 / steps)


def _check_items(a, cfg, outputs):
    d = cfg.data
    g = synthaerial.generate(d.pool, size=a["image"].shape[1], seed=d.seed)
    k = 0
    for c_idx, c in enumerate(d.concepts):
        cid = synthaerial.CONCEPTS.index(c) + 1
        area = (g["class_mask"] == cid).sum((1, 2))
        want = [i for i in range(d.pool) if area[i] >= d.min_area][: d.per_concept]
        for i in want:
            assert a["scene"][k] == i and a["concept"][k] == c_idx
            np.testing.assert_array_equal(a["image"][k], g["image"][i])
            np.testing.assert_array_equal(a["mask"][k], g["class_mask"][i] == cid)
            assert outputs[a["target"][k]] == f"has_{c}"
            k += 1
    assert k == len(a["image"])


def _check_localisation(a, res, tol):
    for name, r in res["methods"].items():
        m, mask = a[name].astype(np.float64), a["mask"]
        pos = np.maximum(m, 0)
        tot = pos.sum((1, 2))
        mass = np.where(tot > 0, (pos * mask).sum((1, 2)) / np.where(tot > 0, tot, 1),
                        np.nan)  # fmt: skip
        np.testing.assert_allclose(a[f"{name}.relevance_mass"], mass, rtol=1e-5)
        ok = mass[np.isfinite(mass)]
        assert r["relevance_mass"]["n"] == ok.size
        np.testing.assert_allclose(r["relevance_mass"]["mean"], ok.mean(), rtol=1e-5)
        hits = []
        for mi, ki in zip(m, mask):
            i, j = np.unravel_index(np.argmax(mi), mi.shape)
            yy, xx = np.nonzero(ki)
            hits.append(float(np.sqrt((yy - i) ** 2 + (xx - j) ** 2).min() <= tol))
        np.testing.assert_array_equal(a[f"{name}.pointing_game"], hits)
        np.testing.assert_allclose(r["pointing_game"]["mean"], np.mean(hits))


def _check_faithfulness(a, res, net, cfg):
    f = jax.jit(net.apply)
    x = a["image"].astype(np.float32) / 255.0
    steps, blur = cfg.metrics.deletion_steps, cfg.metrics.insertion_blur
    base = _blur(x, blur)
    for name in ("saliency", "random"):
        for i in (0, len(x) - 1):
            t, m = a["target"][i], a[name][i]
            dele = _curve_auc_np(f, x[i], m, t, steps, 0.0, False)
            ins = _curve_auc_np(f, x[i], m, t, steps, base[i], True)
            np.testing.assert_allclose(a[f"{name}.deletion_auc"][i], dele, atol=2e-4)
            np.testing.assert_allclose(a[f"{name}.insertion_auc"][i], ins, atol=2e-4)
        got = res["methods"][name]["deletion_auc"]["mean"]
        np.testing.assert_allclose(got, a[f"{name}.deletion_auc"].mean(), rtol=1e-5)


def _minmax(v):
    """Min-max normalised to [0, 1]; a constant map becomes zeros."""
    v = np.asarray(v, np.float64)
    span = v.max() - v.min()
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def _saliency(net, variables, x, t):
    def logit(xi, ti):
        return net.model.apply(variables, net.preprocess(xi[None]), train=False)[0][
            0, ti
        ]

    g = jax.vmap(jax.grad(logit))(x, t)
    return np.abs(np.asarray(g)).max(-1)


def _check_randomization(a, res, net, cfg):
    x = a["image"].astype(np.float32) / 255.0
    keys = jax.random.split(jax.random.key(cfg.seed), 4)
    got = _saliency(net, net.variables, x, a["target"])
    np.testing.assert_allclose(a["saliency"], got, rtol=1e-4, atol=1e-7)
    params = randomize_layers(net.variables["params"], ["fc"], keys[2],
                              randomizer=scores.host_reinit)  # fmt: skip
    rand = _saliency(net, dict(net.variables, params=params), x, a["target"])
    np.testing.assert_allclose(a["saliency.randomized"][0], rand, rtol=1e-4, atol=1e-7)
    assert not np.allclose(rand, got)
    layers = cfg.metrics.randomization_layers
    for name in cfg.metrics.randomization_methods:
        orig, maps = a[name], a[f"{name}.randomized"]
        assert maps.shape == (len(layers),) + orig.shape
        for s, layer in enumerate(layers):
            rho = [sps.spearmanr(np.abs(o).ravel(), np.abs(r).ravel())[0]
                   for o, r in zip(orig, maps[s])]  # fmt: skip
            np.testing.assert_allclose(a[f"{name}.randomization_spearman"][s], rho,
                                       atol=1e-4)  # fmt: skip
            ss = [structural_similarity(_minmax(o), _minmax(r), data_range=1.0)
                  for o, r in zip(orig, maps[s])]  # fmt: skip
            np.testing.assert_allclose(a[f"{name}.randomization_ssim"][s], ss,
                                       atol=1e-4)  # fmt: skip
            want = res["methods"][name]["randomization"][layer]["spearman"]["mean"]
            np.testing.assert_allclose(want, np.nanmean(rho), atol=1e-4)


def _check_seed(a, res):
    for name in ("rise",):
        tau = [sps.kendalltau(np.abs(p).ravel(), np.abs(q).ravel())[0]
               for p, q in zip(a[name], a[f"{name}.key2"])]  # fmt: skip
        got = res["methods"][name]["seed_kendall"]["mean"]
        np.testing.assert_allclose(got, np.mean(tau), atol=1e-4)
        assert not np.array_equal(a[name], a[f"{name}.key2"])


def _check_tabular(t, res, cfg):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    ts = cfg.tabular
    xa, ya = load_wine(return_X_y=True)
    xtr, xte, ytr, _ = train_test_split(xa, ya, test_size=ts.test_fraction,
                                        random_state=cfg.seed, stratify=ya)  # fmt: skip
    mu, sd = xtr.mean(0), xtr.std(0)
    ztr, x = (xtr - mu) / sd, ((xte - mu) / sd)[: ts.num_explain]
    np.testing.assert_allclose(t["x"], x, atol=1e-5)
    mlp = MLPClassifier(ts.hidden, max_iter=ts.mlp_iters, random_state=cfg.seed)
    mlp.fit(ztr.astype(np.float32), ytr)
    p = mlp.predict_proba(t["x"].astype(np.float64))
    ours = tabular.mlp_proba(tabular.mlp_params(mlp))(t["x"])
    np.testing.assert_allclose(ours, p, atol=1e-5)
    target = t["target.mlp"]
    np.testing.assert_array_equal(target, p.argmax(1))

    def z(prob):
        q = np.log(np.clip(prob, 1e-12, 1 - 1e-12))
        return q - q[:, :1]

    median = np.median(ztr, axis=0)
    for name in list(ts.mlp_methods) + ["random"]:
        phi = t[f"mlp.{name}"]
        shift = []
        for k in ts.removal_ks:
            xk = x.copy()
            for row, ph in zip(xk, phi):
                top = np.argsort(-np.abs(ph), kind="stable")[:k]
                row[top] = median[top]
            shift.append(((z(p) - z(mlp.predict_proba(xk))) ** 2).mean(1))
        shift = np.stack(shift, 1)
        np.testing.assert_allclose(t[f"mlp.{name}.removal_shift"], shift, rtol=2e-3,
                                   atol=1e-4)  # fmt: skip
        got = res["models"]["mlp"]["methods"][name]["removal_shift_mean"]["mean"]
        np.testing.assert_allclose(got, shift.mean(1).mean(), rtol=2e-3)
    # KernelSHAP's efficiency: sum phi = p_t(x) - mean p_t(background).
    bg = mlp.predict_proba(ztr[: ts.background]).mean(0)
    phi = t["mlp.kernel_shap"].astype(np.float64)
    rows = np.arange(len(x))
    np.testing.assert_allclose(phi.sum(1), p[rows, target] - bg[target], atol=1e-4)
    # TreeSHAP equals shap's TreeExplainer on the same forest.
    shap = pytest.importorskip("shap")
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        ts.forest_trees, max_depth=ts.forest_depth, random_state=cfg.seed
    ).fit(ztr.astype(np.float32), ytr)
    sv = np.asarray(shap.TreeExplainer(forest).shap_values(t["x"].astype(np.float64)))
    tf = t["target.forest"]
    np.testing.assert_array_equal(tf, forest.predict_proba(t["x"]).argmax(1))
    np.testing.assert_allclose(t["forest.tree_shap"], sv[rows, :, tf], atol=1e-6)


def test_script_end_to_end(backbone, tmp_path):
    path = str(backbone / "backbones" / "small_cnn")
    cfg = explain_config.get_config("tiny")
    cfg.backbone = path
    out = eval_explain.main(["--config", f"{CONFIG}:tiny", "--workdir", str(tmp_path),
                             f"--config.backbone={path}"])  # fmt: skip
    res = json.loads((tmp_path / study.RESULTS).read_text())
    assert res["image"]["num_items"] == out["results"]["image"]["num_items"]
    for fig in out["figures"]:
        data = (tmp_path / fig).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000, fig
    report = (tmp_path / study.REPORT).read_text()
    assert "| method | relevance mass | pointing game | deletion AUC" in report
    assert "None" not in out["markdown"] and "nan" not in out["markdown"]
    for name in list(cfg.methods.names) + ["random"]:
        assert f"| {name}" in report
    a = study.load_npz(str(tmp_path / study.ATTRIBUTIONS))
    net = load_trained(path)
    _check_items(a, cfg, net.outputs)
    _check_localisation(a, res["image"], cfg.metrics.pointing_tolerance)
    _check_faithfulness(a, res["image"], net, cfg)
    _check_randomization(a, res["image"], net, cfg)
    _check_seed(a, res["image"])
    _check_tabular(study.load_npz(str(tmp_path / study.TABULAR)), res["tabular"], cfg)


def test_stage_on_tiny_config(backbone):
    config = explain_config.get_config("tiny")
    config.backbone = "backbones/small_cnn"  # relative to the job's workdir
    config.methods.names = ("grad_cam",)
    config.metrics.randomization_methods = ("grad_cam",)
    config.metrics.randomization_layers = ("fc",)
    config.tabular.mlp_methods = ("gradient_x_input",)
    config.tabular.forest_methods = ()
    config.tabular.randomization_methods = ()
    stage_dir = backbone / "explain"
    stage_dir.mkdir()
    out = stage_explain.explain(config, str(stage_dir))
    assert out["figures"] and all(
        (stage_dir / f).read_bytes()[:8] == PNG for f in out["figures"]
    )
    assert "| grad_cam |" in out["markdown"] and "None" not in out["markdown"]
    assert out["summary"] and out["reconstructions"]
    text = " ".join(out["caveats"])
    assert "items" in text and "Randomisation was not run" not in text
    json.dumps(out)  # the main job stores it as JSON
    r = out["results"]["image"]["methods"]["grad_cam"]
    assert 0 <= r["relevance_mass"]["mean"] <= 1
    assert set(r["randomization"]) == {"fc"}


def test_bad_settings_are_rejected():
    d = study.ImageData(concepts=("airplane", "zeppelin"))
    with pytest.raises(ValueError, match="zeppelin"):
        study.build_items(d, 32, ("has_airplane",))
    with pytest.raises(ValueError, match="has_<concept> output for \\['car'\\]"):
        study.build_items(study.ImageData(concepts=("car",)), 32, ("has_boat",))
    st = study.ExplainStudy(0, "", methods=study.ImageMethods(names=("sailency",)))
    with pytest.raises(ValueError, match="methods.names .*sailency"):
        run.check(st)
    st = study.ExplainStudy(0, "", methods=study.ImageMethods(names=("rise",)))
    with pytest.raises(ValueError, match="randomization_methods .*saliency"):
        run.check(st)
    st = study.ExplainStudy(0, "", tabular=study.TabularStudy(forest_methods=("shap",)))
    with pytest.raises(ValueError, match="tabular.forest_methods .*shap"):
        run.check(st)
    with pytest.raises(ValueError, match="iris"):
        tabular.load_data(study.TabularStudy(dataset="iris"), 0)


def test_config_variants_match_the_study():
    for variant in explain_config.VARIANTS:
        c = explain_config.get_config(variant)
        spec = cli.to_spec(study.ExplainStudy, c)
        assert set(spec.metrics.randomization_methods) <= set(spec.methods.names)
        assert set(spec.tabular.randomization_methods) <= set(spec.tabular.mlp_methods)
        assert isinstance(c.tabular, ml_collections.ConfigDict)
    with pytest.raises(KeyError):
        explain_config.get_config("huge")
