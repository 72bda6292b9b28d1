"""The scripts' error contract: a user mistake is one line, a bug a traceback.

`guard(body, argv)` runs a script body. A user mistake prints
`error: <message>` (one line; a longer message is cut after its first line)
to stderr and exits with status 2 for a command-line or config mistake
(`ConfigError`: argparse errors, bad overrides and values, workdir
refusals) or 1 for bad input: a missing or unreadable file (the `OSError`s
below), jaxcxai's `DataFormatError`, `WeightFileError`,
`MissingWeightsError` and `NonFiniteLossError`, and a `ValueError` or
`KeyError` with a message raised by a `raise` statement of jaxcxai's (or the
scripts' and configs') own code. With `--debug` in the arguments the error is re-raised with its
traceback. Anything else (an exception from inside NumPy or JAX, a failed
`dict[key]` lookup or an operator error in our code) is taken for a bug and
keeps Python's traceback.
"""

from __future__ import annotations

import dis
import sys

from configs.validate import ConfigError

__all__ = ["error_status", "guard", "one_line"]

_INPUT_ERRORS = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    FileExistsError,
)
# jaxcxai's error types for bad input, matched by name so that reporting an
# error imports nothing (and survives the classes moving between modules).
_JAXCXAI_INPUT_ERRORS = {
    "DataFormatError",
    "WeightFileError",
    "MissingWeightsError",
    "NonFiniteLossError",
    "DistributedInitError",
}
_OUR_MODULES = ("jaxcxai", "configs", "train", "eval", "_jaxcxai_config", "__main__")


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and type(e).__str__ is KeyError.__str__:
        return " ".join(str(a) for a in e.args)  # not the quoted repr
    return str(e)


def _raised_by_us(e: BaseException) -> bool:
    """Whether a `raise` statement of our code raised `e` (a check with a
    message), rather than a library, an operator or a failed lookup in it."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    if tb.tb_frame.f_globals.get("__name__", "").split(".")[0] not in _OUR_MODULES:
        return False
    code, offset = tb.tb_frame.f_code, tb.tb_lasti
    op = next((i for i in dis.get_instructions(code) if i.offset == offset), None)
    return op is not None and op.opname == "RAISE_VARARGS"


def error_status(e: BaseException) -> int | None:
    """Exit status of a user mistake (2 usage, 1 bad input); None: a bug."""
    if isinstance(e, ConfigError):
        return 2
    names = {t.__name__ for t in type(e).__mro__ if t.__module__.startswith("jaxcxai")}
    if isinstance(e, _INPUT_ERRORS) or names & _JAXCXAI_INPUT_ERRORS:
        return 1
    # A message raised by our own checks, not an error deep in a library.
    if isinstance(e, ValueError | KeyError) and _raised_by_us(e):
        return 1 if _message(e).strip() else None
    return None


def one_line(e: BaseException) -> str:
    """The error's message on one line (the rest behind `--debug`)."""
    lines = [line.strip() for line in _message(e).splitlines() if line.strip()]
    lines = lines or [type(e).__name__]
    more = f" [{len(lines) - 1} more lines: run with --debug]" if len(lines) > 1 else ""
    return lines[0] + more


def guard(body, argv: list[str] | None = None):
    """Returns `body(argv)`; a user mistake becomes one stderr line and
    `SystemExit(status)`, unless `--debug` is in `argv` (then it is raised)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return body(argv)
    except Exception as e:
        status = error_status(e)
        if status is None or "--debug" in argv:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(status) from None
