"""Zip-format ``.pth`` files (torch >= 1.6), including truncated ones.

The archive holds ``<prefix>/data.pkl`` (the state dict, storages by persistent
id) and one raw little-endian record ``<prefix>/data/<key>`` per storage. Each
record must hold exactly the bytes its pickle declares, and each tensor view is
checked against its storage before it is copied out.

A truncated archive has lost its central directory, so :mod:`zipfile` cannot
open it. To still say which tensors the cut destroyed, the local file headers
are walked from the start: complete stored records (CRC checked) are kept, the
pickle is read if it survived, and the error names the first storage whose
record is missing together with the tensors that view it.
"""

import io
import struct
import zipfile
import zlib

import numpy as np

from jaxcxai.models.torch_pickle import Storage, materialize, storage_users, unpickle
from jaxcxai.models.weight_checks import (
    WeightFileError,
    check_record_size,
    describe_users,
)

__all__ = ["ZIP_MAGIC", "read_zip"]

ZIP_MAGIC = b"PK\x03\x04"
# signature, version, flags, method, time, date, crc, csize, usize, nlen, xlen
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ZIP_FAILURES = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def _salvage_records(path: str) -> dict[str, bytes]:
    """Complete, CRC-valid stored records of a zip that lost its directory."""
    with open(path, "rb") as f:
        raw = f.read()
    records, pos = {}, 0
    while pos + _LOCAL_HEADER.size <= len(raw):
        sig, _, flags, method, _, _, crc, csize, _, nlen, xlen = (
            _LOCAL_HEADER.unpack_from(raw, pos)
        )
        # Sizes in a trailing descriptor (flag 0x08) or zip64 cannot be walked.
        if sig != ZIP_MAGIC or flags & 0x08 or csize == 0xFFFFFFFF:
            break
        name = raw[pos + 30 : pos + 30 + nlen].decode("utf-8", "replace")
        start = pos + 30 + nlen + xlen
        data = raw[start : start + csize]
        if len(data) < csize:
            break  # The cut falls inside this record.
        if method == zipfile.ZIP_STORED and zlib.crc32(data) == crc:
            records[name] = data
        pos = start + csize
    return records


def _open_records(path: str, zf: zipfile.ZipFile | None):
    """(names, read(name) -> bytes) over an intact archive or salvaged records."""
    if zf is not None:

        def read(name: str) -> bytes:
            return zf.read(name)

        return zf.namelist(), read
    records = _salvage_records(path)
    return list(records), records.__getitem__


def _read(path: str, zf: zipfile.ZipFile | None) -> dict[str, np.ndarray]:
    truncated = zf is None
    names, read = _open_records(path, zf)
    cut = "truncated zip archive (no central directory); " if truncated else ""
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pkl:
        raise WeightFileError(f"{path}: {cut}no <prefix>/data.pkl record")
    prefix = pkl[0][: -len("data.pkl")]
    if prefix + "byteorder" in names and read(prefix + "byteorder") != b"little":
        raise WeightFileError(f"{path}: big-endian torch files are not supported")
    storages: dict[str, Storage] = {}
    try:
        pickled = read(pkl[0])
    except _ZIP_FAILURES as e:
        raise WeightFileError(f"{path}: record {pkl[0]!r} is corrupt ({e})") from e
    state = unpickle(io.BytesIO(pickled), storages, path, f"record {pkl[0]!r}")
    users = storage_users(state, path)
    missing = [k for k in storages if f"{prefix}data/{k}" not in names]
    if missing:
        record = f"{prefix}data/{missing[0]}"
        others = f" (and {len(missing) - 1} more storages)" if len(missing) > 1 else ""
        raise WeightFileError(
            f"{path}: {cut}storage record {record!r} of "
            f"{describe_users(users.get(missing[0], []))} is missing{others}"
        )
    if truncated:
        raise WeightFileError(
            f"{path}: {cut}all storage records survived, but the file is cut short"
        )
    for key, storage in storages.items():
        record = f"{prefix}data/{key}"
        tensors = users.get(key, [])
        try:
            raw = read(record)
        except _ZIP_FAILURES as e:
            raise WeightFileError(
                f"{path}: storage record {record!r} of {describe_users(tensors)} "
                f"is corrupt ({type(e).__name__}: {e})"
            ) from e
        itemsize = storage.dtype.itemsize
        check_record_size(path, record, len(raw), storage.numel, itemsize, tensors)
        storage.data = np.frombuffer(raw, storage.dtype)
    return materialize(state, path)


def read_zip(path: str) -> dict[str, np.ndarray]:
    """Reads a zip-format torch state dict (see the module docstring).

    Raises:
      WeightFileError: truncated or corrupt archive, missing or short storage
        record, or a view outside its storage (names the file and tensor).
      UnsafePickleError: the pickle references a global outside the allow-list.
    """
    if not zipfile.is_zipfile(path):
        return _read(path, None)
    try:
        zf = zipfile.ZipFile(path)
    except _ZIP_FAILURES as e:
        raise WeightFileError(f"{path}: corrupt zip archive ({e})") from e
    with zf:
        return _read(path, zf)
