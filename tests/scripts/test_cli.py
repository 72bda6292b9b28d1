"""Config command line: typed overrides, one-line errors, and workdirs that
are checked before anything is written (`--help`: test_help.py)."""

import json
import os
import subprocess
import sys
import types

import pytest

from configs import cli
from tests.paths import CONFIGS, ROOT

CLASSIFIER = os.path.join(CONFIGS, "classifier.py")


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
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left


def test_unknown_field_is_named():
    with pytest.raises(cli.ConfigError) as err:
        cli.parse_args(
            ["--config", CLASSIFIER, "--workdir", "w", "--config.train.lrr=1"]
        )
    msg = str(err.value)
    assert "'train.lrr'" in msg and "lr" in msg and "steps" in msg


def test_bad_value_type_is_named():
    with pytest.raises(cli.ConfigError, match="train.steps=many.*expected int"):
        cli.parse_args(
            ["--config", CLASSIFIER, "--workdir", "w", "--config.train.steps=many"]
        )


def test_unknown_variant_and_missing_file():
    with pytest.raises(cli.ConfigError, match="Unknown variant 'huge'.*small_cnn"):
        cli.load_config("configs/classifier.py:huge")
    with pytest.raises(cli.ConfigError, match="not found"):
        cli.load_config("configs/nope.py")


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_override_is_one_line_and_debug_shows_it(tmp_path, capsys):
    from train import classifier

    argv = [
        "--config",
        f"{CLASSIFIER}:small_cnn_tiny",
        "--workdir",
        str(tmp_path / "w"),
    ]
    with pytest.raises(SystemExit) as done:
        classifier.main(argv + ["--config.train.lrr=1"])
    assert done.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'train.lrr'" in line and "steps" in line
    with pytest.raises(cli.ConfigError, match="train.lrr"):
        classifier.main(argv + ["--config.train.lrr=1", "--debug"])
    with pytest.raises(SystemExit) as done:
        classifier.main(argv + ["--config.train.steps"])  # no "=VALUE"
    assert "--config.a.b=VALUE" in _one_error_line(capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "w")


def test_one_line_in_a_real_process(tmp_path):
    """`python -m` end to end: one stderr line, no traceback, status 2."""
    run = subprocess.run(
        [sys.executable, "-m", "train.hashing", "--config", "configs/duch.py:tiny",
         "--workdir", str(tmp_path / "w"), "--config.train.epochs=-1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    line = _one_error_line(run.stderr)
    assert "train.epochs=-1 must be > 0" in line
    assert not os.path.exists(tmp_path / "w")


def _raise(exc):
    def run(args):
        raise exc() if callable(exc) else exc

    return run


# Bugs inside our own code: a failed lookup and a NumPy error (no `raise`
# statement with a message), in a module named like a jaxcxai one.
_OURS = types.ModuleType("jaxcxai.fake_module_for_tests")
exec(
    "import numpy as np\n"
    "def lookup():\n    return {}['key']\n"
    "def shapes():\n    return np.zeros(3) + np.zeros(4)\n",
    _OURS.__dict__,
)


def test_error_kinds(tmp_path, capsys):
    from jaxcxai import parallel
    from jaxcxai.data.validate import DataFormatError
    from jaxcxai.models.weight_checks import WeightFileError
    from jaxcxai.training import NonFiniteLossError

    argv = ["--config", f"{CLASSIFIER}:small_cnn_tiny", "--workdir", str(tmp_path)]
    main = lambda run, *extra: cli.main(
        run, argv + list(extra), prog="train.classifier", config=CLASSIFIER
    )
    mesh = parallel.make_mesh()
    n = mesh.shape[parallel.DATA_AXIS]
    user = [
        (DataFormatError("ann.json", "missing key 'id'"), "ann.json: missing key"),
        (WeightFileError("w.pth: tensor 'bn.var' reaches past"), "w.pth: tensor"),
        (NonFiniteLossError(3, "loss", float("nan")), "step 3"),
        (FileNotFoundError("no file x.npz"), "no file x.npz"),
    ]
    if n > 1:  # a ValueError raised by a check of the library itself
        batch = lambda: parallel.check_batch_size(n + 1, mesh)
        user.append((batch, f"Global batch size {n + 1} is not divisible"))
    for exc, text in user:
        with pytest.raises(SystemExit) as done:
            main(_raise(exc))
        assert done.value.code == 1
        assert text in _one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as done:
        main(_raise(cli.ConfigError("first line\nsecond\nthird")))
    assert done.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == "error: first line [2 more lines: run with --debug]"
    # A ValueError raised outside jaxcxai, configs and the scripts is no check.
    with pytest.raises(ValueError, match="from elsewhere"):
        main(_raise(ValueError("from elsewhere")))
    with pytest.raises(FileNotFoundError):
        main(_raise(FileNotFoundError("x")), "--debug")
    # Bugs keep their traceback (the exception propagates).
    with pytest.raises(KeyError):
        main(lambda args: _OURS.lookup())
    with pytest.raises(ValueError, match="broadcast"):
        main(lambda args: _OURS.shapes())
    assert main(lambda args: "done") == "done"


def _snapshot(folder):
    return {
        name: (os.stat(os.path.join(folder, name)).st_mtime_ns,
               open(os.path.join(folder, name), "rb").read())
        for name in sorted(os.listdir(folder))
    }  # fmt: skip


def test_changed_config_is_refused_before_anything_is_written(tmp_path, capsys):
    from train import classifier

    work = tmp_path / "run"
    argv = ["--config", f"{CLASSIFIER}:small_cnn_tiny", "--workdir", str(work)]
    cli.save_config(cli.parse_args(argv).config, str(work))  # an earlier run
    (work / "metrics.jsonl").write_text('{"step": 10}\n')
    before = _snapshot(work)
    changes = [
        (["--config.train.steps=7"], ["train.steps: 30 -> 7"]),
        (
            ["--config.data.seed=3", "--config.seed=1"],
            ["data.seed: 0 -> 3", "seed: 0 -> 1"],
        ),
    ]
    for extra, diffs in changes:
        with pytest.raises(SystemExit) as done:
            classifier.main(argv + extra)
        assert done.value.code == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "new --workdir" in line and all(d in line for d in diffs), line
        assert _snapshot(work) == before


def test_identical_config_resumes(tmp_path, monkeypatch):
    from train import classifier

    calls = []
    monkeypatch.setattr(
        classifier, "train_and_evaluate", lambda c, w: calls.append(w) or {"ok": 1}
    )
    argv = ["--config", f"{CLASSIFIER}:small_cnn_tiny", "--workdir", str(tmp_path)]
    assert classifier.main(argv) == {"ok": 1}
    saved = (tmp_path / "config.json").read_text()
    assert classifier.main(argv) == {"ok": 1}
    assert calls == [str(tmp_path)] * 2
    assert (tmp_path / "config.json").read_text() == saved
    assert json.loads(saved)["train"]["steps"] == 30


def test_unusable_workdirs_are_one_line(tmp_path, capsys):
    from eval import concepts
    from train import classifier

    afile = tmp_path / "file"
    afile.write_text("keep")
    config = f"{CLASSIFIER}:small_cnn_tiny"
    cases = [
        (str(afile), "is a file, not a directory"),
        (
            str(afile / "sub"),
            f"cannot create --workdir {afile / 'sub'}: {afile} is a file",
        ),
    ]
    if os.path.isdir("/proc"):
        cases.append(("/proc/jaxcxai-test/run", "--workdir /proc/jaxcxai-test/run"))
    for workdir, text in cases:
        with pytest.raises(SystemExit) as done:
            classifier.main(["--config", config, "--workdir", workdir])
        assert done.value.code == 2
        assert text in _one_error_line(capsys.readouterr().err)
    assert afile.read_text() == "keep"
    probes = os.path.join(CONFIGS, "probes.py:tiny")
    with pytest.raises(SystemExit):
        concepts.main(["--config", probes, "--workdir", str(tmp_path / "none")])
    line = _one_error_line(capsys.readouterr().err)
    assert "does not exist; run python -m train.probes into it first" in line
    # An evaluation of a run made with another config is refused too.
    work = tmp_path / "probes"
    cli.save_config(
        cli.parse_args(["--config", probes, "--workdir", "x"]).config, str(work)
    )
    with pytest.raises(SystemExit):
        concepts.main(["--config", probes, "--workdir", str(work), "--config.seed=5"])
    assert "seed: 0 -> 5" in _one_error_line(capsys.readouterr().err)


def test_flag_scripts_are_one_line(tmp_path, capsys):
    from eval import bench, retrieval
    from train import build_dataset

    cases = [
        (retrieval.main, ["--codes", str(tmp_path / "x.npz"), "--out", "o"], 1,
         f"No codes file at {tmp_path / 'x.npz'}"),
        (retrieval.main, ["--codes", "x.npz", "--out", "o", "--map-k", "0"], 2,
         "argument --map-k: expected a positive integer, got '0'"),
        (build_dataset.main, ["--out", str(tmp_path / "d"), "--num", "-3"], 2,
         "argument --num: expected a positive integer, got '-3'"),
        (bench.main, ["no_such_benchmark"], 2, "unknown benchmark 'no_such_benchmark'"),
    ]  # fmt: skip
    for main, argv, status, text in cases:
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == status
        assert text in _one_error_line(capsys.readouterr().err)
    with pytest.raises(FileNotFoundError):
        retrieval.main(["--codes", str(tmp_path / "x.npz"), "--out", "o", "--debug"])
    assert not (tmp_path / "d").exists()


def test_main_job_contract_through_cli_main(tmp_path, capsys):
    """What eval.reproduce's `main` gets from `cli.main`: a variant's workdir
    refuses another variant, and `check` runs before anything is written."""
    spec = os.path.join(CONFIGS, "reproduce.py")
    main = lambda argv, check=None: cli.main(
        lambda args: args.config.variant, argv, prog="eval.reproduce",
        config="configs/reproduce.py", check=check,
    )  # fmt: skip
    work = str(tmp_path / "job")
    assert main(["--config", f"{spec}:tiny", "--workdir", work]) == "tiny"
    before = _snapshot(work)
    with pytest.raises(SystemExit) as done:
        main(["--config", f"{spec}:default", "--workdir", work])
    assert done.value.code == 2
    assert "variant: tiny -> default" in _one_error_line(capsys.readouterr().err)
    assert _snapshot(work) == before

    def no_stage_x(config):
        raise cli.ConfigError("unknown stages ['x']")

    with pytest.raises(SystemExit):
        main(["--config", spec, "--workdir", str(tmp_path / "new")], no_stage_x)
    assert "unknown stages" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()
