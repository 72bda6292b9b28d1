"""Host-memory allocator settings for XLA's CPU backend.

Every execution of a compiled XLA:CPU program allocates its temporaries
afresh and frees them at the end. glibc's malloc serves blocks above its
mmap threshold with `mmap` and gives them back with `munmap` on free, so
every step touches brand-new pages: the kernel must fault in and zero each
4 KiB page again. For DUCH's training step (UCM sizes, 2-core CPU) that was
14,000 page faults and about 12 ms of a 46 ms step.

`keep_freed_memory()` tells glibc to serve large blocks from its heap and
keep freed memory for reuse (`mallopt`), which removes those faults (0 per
step, 34 ms). The cost is that the process keeps its peak heap: memory
freed by Python or XLA is reused by later allocations rather than returned
to the system. The training and evaluation scripts call it at start-up;
library code never does. It is a no-op where glibc is not the allocator.
The environment variables MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_ and
MALLOC_TOP_PAD_ have the same effect for any program.
"""

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["keep_freed_memory"]

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_done = False


def keep_freed_memory(top_pad_mib: int = 256) -> bool:
    """Makes glibc reuse freed host memory instead of returning it.

    Args:
      top_pad_mib: extra heap obtained at each heap growth, in MiB, so that
        growth happens rarely.

    Returns:
      True if the settings were applied (Linux with glibc), else False.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    pad = min(top_pad_mib, 1024) << 20
    ok = (
        mallopt(_M_MMAP_MAX, 0)
        and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        and mallopt(_M_TOP_PAD, pad)
    )
    if not ok:
        logging.warning("mallopt refused the host-memory settings; left as they were")
        return False
    _done = True
    return True
