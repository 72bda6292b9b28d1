"""Config command line: variants, typed overrides, clear rejections."""

import json

import pytest

from configs import cli


def test_variant_and_override_resolve(tmp_path):
    args = cli.parse_args(
        [
            "--config",
            "configs/classifier.py:small_cnn_tiny",
            "--workdir",
            str(tmp_path),
            "--config.train.lr=3e-4",
            "--config.train.steps=7",
            "--config.data.name=digits",
        ]
    )
    c = args.config
    assert c.train.lr == pytest.approx(3e-4) and isinstance(c.train.lr, float)
    assert c.train.steps == 7 and c.data.name == "digits"
    assert c.data.image_size == 32  # from the tiny variant
    path = cli.save_config(c, str(tmp_path))
    assert json.load(open(path))["train"]["steps"] == 7


def test_unknown_field_is_named():
    with pytest.raises(cli.ConfigError) as err:
        cli.parse_args(
            [
                "--config",
                "configs/classifier.py",
                "--workdir",
                "w",
                "--config.train.lrr=1",
            ]
        )
    msg = str(err.value)
    assert "'train.lrr'" in msg and "lr" in msg and "steps" in msg


def test_bad_value_type_is_named():
    with pytest.raises(cli.ConfigError, match="train.steps=many.*expected int"):
        cli.parse_args(
            [
                "--config",
                "configs/classifier.py",
                "--workdir",
                "w",
                "--config.train.steps=many",
            ]
        )


def test_unknown_variant_and_missing_file():
    with pytest.raises(cli.ConfigError, match="Unknown variant 'huge'"):
        cli.load_config("configs/classifier.py:huge")
    with pytest.raises(cli.ConfigError, match="not found"):
        cli.load_config("configs/nope.py")
