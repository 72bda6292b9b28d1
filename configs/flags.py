"""Flags the scripts share besides `--config` and `--workdir` (used through
`configs.cli`, which re-exports the public names): the "several hosts" group
(`--coordinator`, `--num_processes`, `--process_id`) with the
`jax.distributed` start it drives, and the argparse `type=`s of the scripts
that take plain flags (no config file).
"""

from __future__ import annotations

import argparse

from configs.validate import ConfigError

__all__ = ["non_negative_int", "positive_int", "probability", "start_hosts"]


def _host_flags(parser) -> None:
    g = parser.add_argument_group(
        "several hosts",
        "run the same command on every host with its own --process_id "
        "(SLURM and Cloud TPU are detected without the flags)",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="address of process 0's jax.distributed coordinator",
    )
    g.add_argument(
        "--num_processes",
        type=int,
        default=None,
        metavar="N",
        help="number of processes (hosts) in the run",
    )
    g.add_argument("--process_id", type=int, default=None, metavar="I",
                   help="this process's index in [0, N)")  # fmt: skip


def start_hosts(args: argparse.Namespace) -> bool:
    """`jax.distributed` from the `--coordinator/--num_processes/--process_id`
    flags (or a detected cluster launcher); a no-op on one host.

    Raises:
      ConfigError: only some of the flags, or a process id outside [0, N).
    """
    flags = (args.coordinator, args.num_processes, args.process_id)
    given = [f is not None for f in flags]
    if any(given) and not all(given):
        raise ConfigError(
            "--coordinator, --num_processes and --process_id go together "
            f"(got coordinator={flags[0]}, num_processes={flags[1]}, "
            f"process_id={flags[2]})"
        )
    if all(given) and not (flags[1] >= 1 and 0 <= flags[2] < flags[1]):
        raise ConfigError(
            f"--process_id {flags[2]} must lie in [0, --num_processes={flags[1]})"
        )
    from jaxcxai import parallel

    return parallel.initialize_distributed(*flags)


def _number(kind, test, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


# argparse `type=`s of the scripts that take plain flags (no config file).
positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
probability = _number(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
