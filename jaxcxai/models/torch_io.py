"""Reads PyTorch, safetensors and NumPy weight files into NumPy, without torch.

Supported formats (chosen by content, not by file name):

* legacy ``.pth`` (torch < 1.6, non-zip): five consecutive pickles - magic number,
  protocol version, sys-info dict, the state dict whose tensors point at storages by
  persistent id, and the list of storage keys - followed by each storage as an int64
  element count plus raw little-endian data;
* zip ``.pth`` (torch >= 1.6, :mod:`jaxcxai.models.torch_zip`);
* ``.safetensors`` (:mod:`jaxcxai.models.safetensors_io`) and ``.npz``.

The pickles go through the restricted unpickler of
:mod:`jaxcxai.models.torch_pickle` (no arbitrary globals). Every storage is checked
against the element count its pickle declares and every tensor view against its
storage, so a truncated or crafted file raises :class:`WeightFileError` naming
the file and the tensor instead of returning foreign memory or crashing.
"""

import os
import struct
import zipfile
from typing import Any

import numpy as np

from jaxcxai.models.safetensors_io import read_safetensors
from jaxcxai.models.torch_pickle import (
    Storage,
    UnsafePickleError,
    materialize,
    storage_users,
    unpickle,
)
from jaxcxai.models.torch_zip import ZIP_MAGIC, read_zip
from jaxcxai.models.weight_checks import (
    WeightFileError,
    check_record_size,
    describe_users,
)

__all__ = ["UnsafePickleError", "WeightFileError", "read_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_legacy(path: str) -> dict[str, np.ndarray]:
    storages: dict[str, Storage] = {}
    with open(path, "rb") as f:
        load = lambda what: unpickle(f, storages, path, what)
        magic = load("magic-number pickle")
        if magic != _LEGACY_MAGIC:
            raise WeightFileError(
                f"{path}: not a torch file (bad magic number {magic!r:.60})"
            )
        load("protocol-version pickle")
        sys_info = load("sys-info pickle")
        if not isinstance(sys_info, dict):
            raise WeightFileError(f"{path}: sys-info is not a dict")
        if not sys_info.get("little_endian", True):
            raise WeightFileError(f"{path}: big-endian torch files are not supported")
        state = load("state-dict pickle")
        keys: Any = load("storage-key pickle")
        users = storage_users(state, path)
        if not isinstance(keys, list):
            raise WeightFileError(f"{path}: storage key list is not a list")
        for key in keys:
            key = str(key)
            tensors = users.get(key, [])
            if key not in storages:
                raise WeightFileError(
                    f"{path}: data for storage {key!r}, which no tensor references"
                )
            storage = storages[key]
            head = f.read(8)
            if len(head) < 8:
                raise WeightFileError(
                    f"{path}: truncated before storage {key!r} of "
                    f"{describe_users(tensors)}"
                )
            (numel,) = struct.unpack("<q", head)
            itemsize = storage.dtype.itemsize
            if numel != storage.numel:
                raise WeightFileError(
                    f"{path}: storage {key!r} of {describe_users(tensors)} has "
                    f"{numel} elements in the file, {storage.numel} in the pickle"
                )
            raw = f.read(numel * itemsize)
            check_record_size(path, key, len(raw), numel, itemsize, tensors)
            storage.data = np.frombuffer(raw, storage.dtype)
    return materialize(state, path)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightFileError(f"{path}: not a readable .npz archive ({e})") from e
    out = {}
    with data:
        if not hasattr(data, "files"):
            raise WeightFileError(f"{path}: a single .npy array, not a .npz dict")
        for key in data.files:
            try:
                out[key] = data[key]
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
                raise WeightFileError(
                    f"{path}: tensor {key!r} is corrupt ({type(e).__name__}: {e})"
                ) from e
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a weight file into a flat ``{name: array}`` dict.

    Args:
      path: a legacy or zip ``.pth``/``.pt`` state dict, a ``.safetensors`` or an
        ``.npz`` file.

    Returns:
      Parameter name -> NumPy array (a copy, C-contiguous), in file order. Entries
      such as ``num_batches_tracked`` are kept; conversion drops them.

    Raises:
      FileNotFoundError: the file does not exist.
      UnsafePickleError: a pickle references a global outside the allow-list.
      WeightFileError: the file is truncated or corrupt, is not a flat state
        dict of tensors, or a tensor reaches outside its storage; the message
        names the file and, where one is involved, the tensor.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith(".npz"):
        return _read_npz(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == ZIP_MAGIC:  # A cut archive fails is_zipfile but keeps its magic.
        return read_zip(path)
    return _read_legacy(path)
