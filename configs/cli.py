"""Script-boundary command line: `--config FILE:VARIANT --workdir DIR` plus
dotted overrides such as `--config.optim.lr=3e-4`, and the error contract.

Configs are ml_collections `ConfigDict`s returned by `get_config(variant)` in
`configs/*.py`. Overrides are type-checked against the existing field, and an
unknown field or a bad value is rejected with a message that names it and
lists the valid choices; the resolved config is then checked against the
rules its file declares (`configs.validate`), and the workdir is checked,
before anything is written. `--help` lists the config file's variants, the
override syntax and every field with its default and meaning
(`configs.help`).

Errors (`main`, `guard`, from `configs.errors`): a user mistake prints one
line, `error: <message>`, and exits with status 2 (command line, config,
workdir) or 1 (bad input); `--debug` shows its traceback; a bug keeps
Python's traceback.

Re-exported here: the "several hosts" flags and the plain-flag types
(`configs.flags`), and `to_spec` / `checked_spec`, which turn a config
section into the library's frozen dataclass (`configs.specs`).

A script's `main` is one call (`train/probes.py`):

    def main(argv=None):
        return cli.main(_run, argv, prog="train.probes",
                        config="configs/probes.py", doc=__doc__)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

import ml_collections

from configs import validate
from configs.errors import error_status as error_status
from configs.errors import guard
from configs.flags import _host_flags
from configs.flags import non_negative_int as non_negative_int
from configs.flags import positive_int as positive_int
from configs.flags import probability as probability
from configs.flags import start_hosts as start_hosts
from configs.overrides import apply_override as apply_override
from configs.overrides import load, load_module
from configs.overrides import load_config as load_config
from configs.specs import checked_spec as checked_spec
from configs.specs import to_spec as to_spec
from configs.validate import ConfigError as ConfigError
from configs.validate import WorkdirError as WorkdirError

__all__ = [
    "ArgumentParser",
    "ConfigError",
    "WorkdirError",
    "apply_override",
    "error_status",
    "guard",
    "load_config",
    "load_module",
    "main",
    "non_negative_int",
    "parse_args",
    "positive_int",
    "probability",
    "save_config",
    "start_hosts",
    "to_spec",
]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one-line `ConfigError`s and that
    accepts `--debug` (show the traceback of an error)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="show the traceback of an error"
        )

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")


def _config_arg(rest: list[str]) -> str | None:
    for i, arg in enumerate(rest):
        if arg.startswith("--config="):
            return arg.partition("=")[2]
        if arg == "--config" and i + 1 < len(rest):
            return rest[i + 1]
    return None


def parse_args(
    argv: list[str] | None = None,
    description: str = "",
    extra=None,
    *,
    prog: str | None = None,
    config_file: str | None = None,
) -> argparse.Namespace:
    """Parses `--config FILE:VARIANT --workdir DIR [--config.x.y=V ...]`.

    Args:
      argv: arguments (default `sys.argv[1:]`).
      description: help text of the script (its module docstring).
      extra: optional `parser -> None` that adds script-specific flags.
      prog: the script's module (`train.probes`), shown in the usage.
      config_file: its default config file (`configs/probes.py`), whose
        variants and fields `--help` lists when `--config` is not given.

    Returns:
      A namespace with `config` (a resolved, validated, locked
      `ConfigDict`), `workdir`, `debug` and any extra flags.

    Raises:
      ConfigError: a bad argument, override or config value.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    overrides = [a for a in argv if a.startswith("--config.")]
    rest = [a for a in argv if not a.startswith("--config.")]
    shown = config_file or "FILE.py"
    parser = ArgumentParser(
        prog=f"python -m {prog}" if prog else None,
        usage=f"python -m {prog or 'MODULE'} --config {shown}[:VARIANT] "
        "--workdir DIR [--config.a.b=VALUE ...] [--debug]",
        description=description,
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE.py[:VARIANT]", help="config file"
    )
    parser.add_argument("--workdir", required=True, metavar="DIR", help="run folder")
    _host_flags(parser)
    if extra is not None:
        extra(parser)
    if {"-h", "--help"} & set(rest):
        parser.epilog = _help_epilog(prog or "MODULE", _config_arg(rest) or config_file)
    args = parser.parse_args(rest)
    # Before anything asks JAX for its devices (the config checks do).
    start_hosts(args)
    config, module = load(args.config)
    for arg in overrides:
        key, sep, value = arg[len("--config.") :].partition("=")
        if not sep:
            raise ConfigError(f"Override {arg!r} needs the form --config.a.b=VALUE.")
        apply_override(config, key, value)
    validate.check_config(config, module)
    config.lock()
    args.config = config
    return args


def _help_epilog(prog: str, spec: str | None) -> str | None:
    if not spec:
        return None
    from configs import help as config_help

    path = spec.partition(":")[0]
    found = path if os.path.isfile(path) else os.path.join(REPO, path)
    return config_help.help_text(prog, path, found, load_module(found))


def save_config(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Writes the resolved config as `workdir/config.json` (atomically: a
    temporary file in the workdir, renamed over the old one)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    text = json.dumps(json.loads(config.to_json_best_effort()), indent=2)
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=".config.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def print_study(out: dict, workdir: str, report: str) -> dict:
    """Prints a study's markdown, its stage seconds (when `out["results"]`
    has them) and the report path; the `body` of every study script."""
    print(out["markdown"])
    seconds = out["results"].get("seconds")
    if seconds:
        print(json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    print(f"report: {os.path.join(workdir, report)}")
    return out


def main(
    run,
    argv: list[str] | None = None,
    *,
    prog: str,
    config: str,
    doc: str = "",
    extra=None,
    existing_workdir: bool | str = False,
    check=None,
):
    """A config-driven script: parse, validate, check the workdir, run.

    Args:
      run: `args -> result`, the script's work (`args.config`, `args.workdir`).
      argv: arguments (default `sys.argv[1:]`).
      prog: the script's module, e.g. "train.probes".
      config: its default config file, e.g. "configs/probes.py" (`--help`).
      doc: the script's help text (its module docstring).
      extra: optional `parser -> None` adding script-specific flags.
      existing_workdir: the script reads a finished run (evaluation): the
        workdir must exist (a string names the script that writes it) and
        nothing is saved; otherwise the resolved config is saved to
        `workdir/config.json` before `run`.
      check: optional `config -> None` that raises `ConfigError` for a rule
        the declarations cannot express (e.g. unknown stage names); it runs
        before the workdir is touched.

    Returns:
      `run(args)`; a user mistake exits as described in the module docstring.
    """

    def body(argv):
        from jaxcxai import hostmem

        args = parse_args(argv, doc, extra, prog=prog, config_file=config)
        if check is not None:
            check(args.config)
        validate.check_workdir(args.config, args.workdir, existing=existing_workdir)
        if not existing_workdir:
            try:
                save_config(args.config, args.workdir)
            except OSError as e:
                raise WorkdirError(f"cannot write --workdir {args.workdir}: {e}")
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        hostmem.keep_freed_memory()
        return run(args)

    return guard(body, argv)
