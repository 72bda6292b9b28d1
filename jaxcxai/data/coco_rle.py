"""COCO run-length encoding: uncompressed counts and the compressed string.

COCO masks are run lengths over the mask flattened in column-major (Fortran)
order, starting with a run of zeros (possibly of length 0) and alternating.
The compressed form (`counts` as a string) stores each count like LEB128 but
with 5 payload bits per character: the low 5 bits of the value, bit 5 (0x20)
set when more characters follow, and bit 4 of the last character acting as
sign bit; characters are offset by 48 (so they are ASCII 48..111). From the
fourth count on (index i > 2) the difference to count i-2 is stored instead
of the count itself, which keeps the numbers small for smooth shapes.

Functions here are the NumPy reference implementation of that documented
scheme, written from its description (no pycocotools dependency).
"""

import numpy as np

__all__ = [
    "counts_from_string",
    "counts_to_string",
    "rle_decode",
    "rle_encode",
    "rle_to_mask",
]


def counts_to_string(counts) -> str:
    """Encodes run lengths as a compressed COCO RLE string."""
    counts = [int(c) for c in counts]
    chars = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative deltas end at -1
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def counts_from_string(s: str) -> list[int]:
    """Decodes a compressed COCO RLE string into run lengths."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError(f"truncated COCO RLE string at char {p}: {s!r}")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid COCO RLE char {s[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)  # sign-extend the 5k-bit value
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(counts, height: int, width: int) -> np.ndarray:
    """Run lengths (uncompressed) -> (height, width) bool mask.

    Raises:
      ValueError: a negative run, or runs that do not sum to height*width.
    """
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("RLE counts must be a 1-D list of non-negative ints")
    total = int(counts.sum())
    if total != height * width:
        raise ValueError(
            f"RLE counts sum to {total}, but the mask is {height}x{width}="
            f"{height * width} pixels"
        )
    values = np.arange(len(counts)) % 2 == 1  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T  # column-major, as COCO stores it


def rle_encode(mask: np.ndarray) -> list[int]:
    """(height, width) mask -> uncompressed run lengths (column-major)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.astype(bool).T.reshape(-1)
    # Run boundaries are where the value changes; prepend a virtual 0 so the
    # first run always counts zeros (length 0 if the mask starts with 1).
    change = np.flatnonzero(np.diff(np.concatenate([[False], flat]).astype(np.int8)))
    bounds = np.concatenate([[0], change, [flat.size]])
    return np.diff(bounds).tolist()


def rle_to_mask(rle: dict) -> np.ndarray:
    """A COCO RLE dict `{"size": [h, w], "counts": list | str}` -> bool mask."""
    if "size" not in rle or "counts" not in rle:
        raise ValueError(f"RLE needs 'size' and 'counts', got keys {sorted(rle)}")
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = counts_from_string(counts)
    return rle_decode(counts, height, width)
