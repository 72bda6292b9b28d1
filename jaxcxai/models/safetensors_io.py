"""A validating reader for ``.safetensors`` files (no torch, no Rust bindings).

Layout (the safetensors format description): an unsigned little-endian 64-bit
header length ``n``, ``n`` bytes of UTF-8 JSON, then the data buffer. The JSON
maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
with offsets relative to the buffer; an optional ``__metadata__`` entry maps
strings to strings.

Every entry is checked before any byte is read: known dtype, a shape of
non-negative integers, ``0 <= begin <= end <= len(buffer)``,
``end - begin == prod(shape) * itemsize``, and no two tensors sharing a byte.
Gaps between tensors are tolerated (they cannot make a tensor read foreign
bytes). Failures are :class:`WeightFileError` naming the file and the tensor.
"""

import json
import math
import os

import ml_dtypes
import numpy as np

from jaxcxai.models.weight_checks import WeightFileError

__all__ = ["read_safetensors"]

_DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
# The reference implementation refuses headers above 100 MB as well.
_MAX_HEADER = 100_000_000


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate keys {dup[:3]}")
    return dict(pairs)


def _read_header(path: str, f, file_size: int) -> tuple[dict, int]:
    head = f.read(8)
    if len(head) < 8:
        raise WeightFileError(f"{path}: {file_size} bytes; no 8-byte header length")
    n = int.from_bytes(head, "little")
    if not 2 <= n <= min(_MAX_HEADER, file_size - 8):
        raise WeightFileError(
            f"{path}: header length {n} is not sane (file has {file_size} bytes, "
            f"limit {_MAX_HEADER}); truncated or not a safetensors file"
        )
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError.
        raise WeightFileError(f"{path}: header is not valid UTF-8 JSON ({e})") from e
    if not isinstance(header, dict):
        raise WeightFileError(f"{path}: header is {type(header).__name__}, not a dict")
    return header, 8 + n


def _check_entry(path: str, name: str, info, buffer_len: int):
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(
        info
    ):
        raise WeightFileError(f"{where}: needs dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _DTYPES:
        raise WeightFileError(
            f"{where}: unknown dtype {dtype!r:.40}; known: {sorted(_DTYPES)}"
        )
    if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
        raise WeightFileError(f"{where}: shape {shape!r:.80} is not a list of sizes")
    if not (
        isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))
    ):
        raise WeightFileError(f"{where}: data_offsets {offsets!r:.80} not [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= buffer_len:
        raise WeightFileError(
            f"{where}: data_offsets [{begin}, {end}] outside the data buffer of "
            f"{buffer_len} bytes"
        )
    want = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != want:
        raise WeightFileError(
            f"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes, but "
            f"shape {shape} of {dtype} needs {want}"
        )
    return name, _DTYPES[dtype], tuple(shape), begin, end


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a ``.safetensors`` file into ``{name: array}`` (writeable copies).

    Raises:
      WeightFileError: header length not sane, header not UTF-8 JSON (or with
        duplicate names), unknown dtype, bad shape, offsets outside the buffer,
        a byte span that does not match ``prod(shape) * itemsize``, or two
        tensors overlapping; the message names the file and the tensor.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, data_start = _read_header(path, f, file_size)
        metadata = header.pop("__metadata__", {})
        if not (
            isinstance(metadata, dict)
            and all(isinstance(v, str) for v in metadata.values())
        ):
            raise WeightFileError(f"{path}: __metadata__ must map strings to strings")
        buffer_len = file_size - data_start
        entries = [_check_entry(path, k, v, buffer_len) for k, v in header.items()]
        spans = sorted((e for e in entries if e[4] > e[3]), key=lambda e: e[3])
        for prev, cur in zip(spans, spans[1:]):
            if cur[3] < prev[4]:
                raise WeightFileError(
                    f"{path}: tensors {prev[0]!r} [{prev[3]}, {prev[4]}] and "
                    f"{cur[0]!r} [{cur[3]}, {cur[4]}] overlap in the data buffer"
                )
        out = {}
        for name, dtype, shape, begin, end in entries:
            buf = bytearray(end - begin)
            f.seek(data_start + begin)
            if f.readinto(buf) != len(buf):  # The file shrank while reading.
                raise WeightFileError(f"{path}: tensor {name!r}: short read")
            out[name] = np.frombuffer(buf, dtype).reshape(shape)
    return out
