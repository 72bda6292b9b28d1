"""`hostmem.keep_freed_memory`: freed large blocks are reused, not re-faulted."""

import os
import subprocess
import sys

import pytest

from tests.paths import ROOT

# Allocates, touches and frees a 48 MiB and a 4 MiB block three times (the
# pattern of an XLA:CPU step's temporaries) and prints the page faults of
# the last two rounds.
CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from jaxcxai import hostmem
    assert hostmem.keep_freed_memory() and hostmem.keep_freed_memory()
def round_():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    big, small = np.empty(48 << 18, np.float32), np.empty(4 << 18, np.float32)
    big.fill(1.0); small.fill(1.0)
    del big, small
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
round_()
print(round_() + round_())
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=ROOT, check=True,
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
    )  # fmt: skip
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    if default < 100:
        pytest.skip(f"this allocator already reuses freed blocks ({default} faults)")
    # glibc's default gives the 48 MiB block back on free and faults its
    # pages in again every round; the kept heap reuses them.
    assert kept < 50 < default, (kept, default)
