"""Config validation at the script boundary (configs/validate.py): declared
ranges, batch sizes against dataset sizes, and the device-divisibility rule
of the README, all checked before anything is written."""

import os
import re
import types

import jax
import ml_collections
import pytest

from configs import cli, validate
from tests.paths import CONFIGS

OWNED = (
    "classifier",
    "probes",
    "loce",
    "duch",
    "chnr",
    "discover",
    "explain",
    "gating",
    "stability",
    "compare",
    "background",
    "hierarchy",
    "adversarial",
)
# Hand-picked sizes and counts per config file (not read from its
# declarations): each must be positive.
SIZES = {
    "classifier": ("data.num_train", "data.image_size", "train.batch_size",
                   "train.steps"),
    "probes": ("batch_size", "data.num_train", "net2vec.epochs", "net2vec.runs"),
    "loce": ("batch_size", "data.num_images", "loce.steps", "loce.chunk_size"),
    "duch": ("train.batch_size", "train.epochs", "model.bits",
             "data.synthetic.num_images"),
    "chnr": ("train.batch_size", "train.epochs", "chnr.detector_blocks"),
    "explain": ("data.per_concept", "methods.ig_steps", "methods.rise_masks",
                "tabular.num_explain"),
    "discover": ("batch_size", "data.num_images", "num_components", "nmf.iters",
                 "sae.steps"),
    "gating": ("models.mc_passes", "e2.num_samples", "explainers.lime_samples",
               "image.num_images"),
    "stability": ("batch_size", "data.num_train", "data.num_heldout", "retrieval.steps",
                  "attribution.copies"),
    "compare": ("batch_size", "pretrained_size", "data.num_train", "data.num_test",
                "net2vec.epochs"),
    "background": ("batch_size", "data.num_scenes", "views.train", "fit.steps"),
    "hierarchy": ("heads.batch_size", "heads.steps", "synthaerial.num_images",
                  "align.steps"),
    "adversarial": ("batch_size", "attack.steps", "attack.cw_steps"),
}  # fmt: skip
VARIANT = {"classifier": "small_cnn_tiny", "probes": "tiny", "loce": "tiny",
           "duch": "tiny", "chnr": "tiny", "discover": "tiny",
           "explain": "tiny", "gating": "tiny", "stability": "tiny",
           "compare": "tiny", "background": "tiny", "hierarchy": "tiny",
           "adversarial": "tiny"}  # fmt: skip


def _module(name):
    return cli.load_module(os.path.join(CONFIGS, f"{name}.py"))


def _argv(name, *overrides):
    spec = os.path.join(CONFIGS, f"{name}.py:{VARIANT[name]}")
    return ["--config", spec, "--workdir", "unused", *overrides]


@pytest.mark.parametrize("name", OWNED + ("reproduce",))
def test_every_numeric_field_is_declared(name):
    module = _module(name)
    for variant in module.VARIANTS:
        config = module.get_config(variant)
        assert validate.undeclared(config, module) == [], (name, variant)


@pytest.mark.parametrize("name", OWNED)
def test_declared_names_are_fields(name):
    module = _module(name)
    fields = set()
    for variant in module.VARIANTS:
        fields |= set(validate.flatten(module.get_config(variant)))
    named = [p for names in module.CONSTRAINTS.values() for p in names]
    for batch, size, *when in getattr(module, "BATCH_LIMITS", ()):
        named += [batch, *size.replace(" ", "").split("*"), *(when[0] if when else ())]
    for batch, kind in getattr(module, "DEVICE_BATCHES", {}).items():
        named += [batch, *(() if isinstance(kind, str) else kind[1])]
    assert sorted(set(named) - fields) == []


@pytest.mark.parametrize("name", OWNED + ("reproduce",))
def test_every_variant_passes_its_rules(name):
    module = _module(name)
    for variant in module.VARIANTS:
        assert validate.problems(module.get_config(variant), module) == []


@pytest.mark.parametrize("value", ["0", "-3"])
@pytest.mark.parametrize(
    "name,field", [(n, f) for n in OWNED for f in SIZES[n]], ids=lambda x: str(x)
)
def test_nonpositive_sizes_are_rejected(name, field, value):
    with pytest.raises(cli.ConfigError) as err:
        cli.parse_args(_argv(name, f"--config.{field}={value}"))
    assert f"{field}={value} must be > 0" in str(err.value)


@pytest.mark.parametrize("name", OWNED)
def test_every_declared_positive_field_rejects_zero(name):
    module = _module(name)
    config = module.get_config(VARIANT[name])
    fields = validate.flatten(config)
    for field in module.CONSTRAINTS["> 0"]:
        bad = "(0,)" if isinstance(fields[field], tuple) else "0"
        c = module.get_config(VARIANT[name])
        cli.apply_override(c, field, bad)
        with pytest.raises(cli.ConfigError, match=re.escape(f"{field}=")):
            validate.check_config(c, module)


def test_ranges_tuples_and_sections():
    section = ml_collections.ConfigDict({"n": 2, "ks": (1, 0, 3), "f": 1.0})
    config = ml_collections.ConfigDict(
        {"a": section, "b": {"x": section, "y": section}, "p": 0.0, "q": "text"}
    )
    inner = types.SimpleNamespace(CONSTRAINTS={">= 3": ("n",), "> 0": ("ks",)})
    rules = {"(0, 1]": ("p",), "[0, 1)": ("a.f",), "> 0": ("q",)}
    outer = types.SimpleNamespace(CONSTRAINTS=rules, SECTIONS={"b.*": inner})
    got = validate.problems(config, outer)
    assert got == [
        "p=0.0 must be in (0, 1]",
        "a.f=1.0 must be in [0, 1)",
        "q='text' must be > 0",
        "b.x.n=2 must be >= 3",
        "b.x.ks=(1, 0, 3) must be > 0",
        "b.y.n=2 must be >= 3",
        "b.y.ks=(1, 0, 3) must be > 0",
    ]
    ok = ml_collections.ConfigDict({"p": 1.0, "a": {"f": 0.0}, "q": 1})
    assert validate.problems(ok, types.SimpleNamespace(CONSTRAINTS=rules)) == []


def test_fractions_and_probabilities():
    cases = [
        ("duch", "data.train_frac=1.0", "must be in (0, 1)"),
        ("chnr", "chnr.noise_prob=1.5", "must be in [0, 1]"),
        ("chnr", "chnr.detector_dropout=1.0", "must be in [0, 1)"),
        ("probes", "tcav.num_random=2", "must be >= 3"),
        ("classifier", "data.boat_on_water_p=-0.1", "must be in [0, 1]"),
    ]
    for name, override, text in cases:
        with pytest.raises(cli.ConfigError, match=re.escape(text)):
            cli.parse_args(_argv(name, f"--config.{override}"))


def test_batch_larger_than_the_dataset():
    with pytest.raises(cli.ConfigError) as err:
        cli.parse_args(_argv("classifier", "--config.train.batch_size=512"))
    assert "train.batch_size=512 exceeds the dataset size 256" in str(err.value)
    # Hashing: the training rows are int(train_frac * images) of the split.
    tiny = _module("duch").get_config("tiny").data
    rows = int(tiny.synthetic.num_images * tiny.train_frac)
    big = -(-(rows + 1) // 8) * 8  # above the rows, a multiple of any device count
    with pytest.raises(cli.ConfigError, match=f"exceeds the dataset size {rows} "):
        cli.parse_args(_argv("duch", f"--config.train.batch_size={big}"))
    # Where the config does not know the dataset (h5 files), no limit applies.
    cli.parse_args(
        _argv("duch", f"--config.train.batch_size={big}",
              "--config.data.source=h5", "--config.data.h5_path=/data")
    )  # fmt: skip
    with pytest.raises(
        cli.ConfigError, match="batch_size=64 exceeds the dataset size 48"
    ):
        cli.parse_args(_argv("probes", "--config.batch_size=64"))
    cli.parse_args(
        _argv("probes", "--config.batch_size=64", "--config.data.source=coco")
    )


def test_device_divisibility_names_both_numbers(monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda *a: 4)

    def error(name, *overrides):
        with pytest.raises(cli.ConfigError) as err:
            cli.parse_args(_argv(name, *overrides))
        return str(err.value)

    readme = "global batch size 6 ({}) does not divide by the number of devices 4"
    assert readme.format("train.batch_size") in error(
        "classifier", "--config.train.batch_size=6"
    )
    assert readme.format("batch_size") in error("probes", "--config.batch_size=6")
    assert readme.format("train.batch_size") in error(
        "duch", "--config.train.batch_size=6"
    )
    # The devices a run uses: mesh.num_devices, over the model axis.
    cli.parse_args(
        _argv("duch", "--config.train.batch_size=6", "--config.mesh.num_devices=2")
    )
    cli.parse_args(
        _argv("classifier", "--config.train.batch_size=6", "--config.mesh.num_model=2")
    )
    assert "of devices 2" in error(
        "duch", "--config.train.batch_size=5", "--config.mesh.num_devices=2"
    )
    assert "mesh.num_devices=8 but only 4 devices exist" in error(
        "duch", "--config.mesh.num_devices=8"
    )
    # The feature extractor's batch counts only where it runs (SynthAerial).
    cli.parse_args(_argv("duch", "--config.data.synthaerial.batch_size=6"))
    assert readme.format("data.synthaerial.batch_size") in error(
        "duch",
        "--config.data.synthaerial.batch_size=6",
        "--config.data.source=synthaerial",
        "--config.data.synthaerial.num_images=128",
    )


@pytest.mark.parametrize("override", ["train.batch_size=-4", "train.epochs=-1"])
def test_hashing_negative_sizes_stop_before_training(override, tmp_path, capsys):
    from train import hashing

    work = tmp_path / "w"
    argv = ["--config", os.path.join(CONFIGS, "chnr.py:tiny"), "--workdir", str(work)]
    with pytest.raises(SystemExit) as done:
        hashing.main(argv + [f"--config.{override}"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"error: bad config: {override} must be > 0")
    assert not work.exists()
