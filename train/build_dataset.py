"""Builds SynthAerial as a TFDS array_record dataset (no TensorFlow needed).

    python -m train.build_dataset --out data_cache/tfds --num 10000 --size 128 --seed 0

Writes ``OUT/synth_aerial/<config>/1.0.0/`` with splits ``train`` (``--num`` images)
and ``test`` (``--num-test`` images, default num // 5, drawn from the same seeded
stream after the training images so the splits are disjoint). Read it back with
``jaxcxai.data.tfds_builder.load(OUT, "train")``.
"""

from __future__ import annotations

import os
import time

from configs import cli
from jaxcxai.data import synthaerial, tfds_builder


def main(argv=None) -> str:
    """`python -m train.build_dataset`; a user mistake is one `error:` line."""
    return cli.guard(_main, argv)


def _main(argv) -> str:
    p = cli.ArgumentParser(
        prog="python -m train.build_dataset", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", required=True, help="TFDS data_dir to write into")
    p.add_argument(
        "--num", type=cli.positive_int, required=True, help="training images"
    )
    p.add_argument(
        "--num-test", type=cli.non_negative_int, default=None, help="default: num // 5"
    )
    p.add_argument("--size", type=cli.positive_int, default=128, help="image side (px)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--boat-on-water-p", type=cli.probability, default=0.9)
    p.add_argument(
        "--scenes", nargs="*", default=None, choices=synthaerial.SCENES,
        metavar="SCENE", help=f"subset of {', '.join(synthaerial.SCENES)}",
    )  # fmt: skip
    p.add_argument("--preview", default=None, help="also save a sample grid PNG here")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise cli.ConfigError(f"--out {args.out} is a file, not a directory")
    num_test = args.num // 5 if args.num_test is None else args.num_test

    t0 = time.perf_counter()
    path = tfds_builder.build(
        args.out,
        num_train=args.num,
        num_test=num_test,
        size=args.size,
        seed=args.seed,
        boat_on_water_p=args.boat_on_water_p,
        scenes=args.scenes,
    )
    dt = time.perf_counter() - t0
    print(
        f"SynthAerial {args.num} train + {num_test} test images "
        f"({args.size}x{args.size}) in {path} ({dt:.1f} s)"
    )
    if args.preview:
        from jaxcxai.data.synthaerial_plots import plot_samples

        src = tfds_builder.load(path, "train")
        plot_samples(tfds_builder.to_arrays(src, range(min(6, len(src)))), args.preview)
        print(f"preview written to {args.preview}")
    return path


if __name__ == "__main__":
    main()
