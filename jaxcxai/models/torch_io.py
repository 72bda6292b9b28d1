"""Reads PyTorch, safetensors and NumPy weight files into NumPy, without torch.

Supported formats (chosen by content, not by file name):

* legacy ``.pth`` (torch < 1.6, non-zip): five consecutive pickles - magic number,
  protocol version, sys-info dict, the state dict whose tensors point at storages by
  persistent id, and the list of storage keys - followed by each storage as an int64
  element count plus raw little-endian data (environment.md §3.3);
* zip ``.pth`` (torch >= 1.6): ``<prefix>/data.pkl`` plus one raw file per storage
  at ``<prefix>/data/<key>``;
* ``.safetensors`` (through ``safetensors.numpy``) and ``.npz``.

The pickles are read with a restricted unpickler that resolves only the tensor
rebuild functions, the ``torch.*Storage`` types and ``collections.OrderedDict``. Any
other global (``os.system``, ``builtins.eval``, ...) raises
:class:`UnsafePickleError`, so loading an untrusted file never runs its code.
"""

import collections
import os
import pickle
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["UnsafePickleError", "read_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype of one element.
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A weight file's pickle referenced a global outside the tensor allow-list."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only its dtype matters here."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage referenced from the pickle; ``data`` is filled in once read."""

    def __init__(self, dtype: np.dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """A strided view of a storage; materialised after all storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        storage = self.storage
        if isinstance(storage, tuple):  # Legacy storage view: (base, offset, numel).
            base, view_offset, _ = storage
            data, offset = base.data, self.offset + view_offset
        else:
            data, offset = storage.data, self.offset
        if data is None:
            raise ValueError(f"storage {self.storage!r} was never read from the file")
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # Covers torch._utils._rebuild_tensor and _rebuild_tensor_v2; the extra
    # arguments (requires_grad, backward hooks, metadata) do not affect values.
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensor subclasses (nn.Parameter) pickle as their plain-tensor rebuild.
    return func(*args)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): None,
    ("torch.nn.parameter", "Parameter"): None,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; storages come back as `_Storage`."""

    def __init__(self, file, storages: dict[str, _Storage], what: str):
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafePickleError(
            f"{self._what}: refusing to load global '{module}.{name}'; only tensor "
            "rebuild functions, torch storage types and OrderedDict are allowed "
            "(the file is not a plain state dict, or it is malicious)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._what}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(
                f"{self._what}: unsupported storage type {storage_type!r}"
            )
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, key, int(numel))
        storage = self._storages[key]
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # Pre-0.4 storage views: (view key, offset, numel).
            return (storage, int(view[1]), int(view[2]))
        return storage


def _materialize(obj: Any, path: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, _LazyTensor):
            raise ValueError(
                f"{path}: entry {key!r} is {type(value).__name__}, not a tensor"
            )
        out[str(key)] = value.materialize()
    return out


def _read_legacy(path: str) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        magic = _RestrictedUnpickler(f, storages, path).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch file (bad magic number {magic!r})")
        _RestrictedUnpickler(f, storages, path).load()  # Protocol version.
        sys_info = _RestrictedUnpickler(f, storages, path).load()
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian torch files are not supported")
        state = _RestrictedUnpickler(f, storages, path).load()
        keys = _RestrictedUnpickler(f, storages, path).load()
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated data for storage {key!r}")
            storage.data = np.frombuffer(raw, storage.dtype)
    return _materialize(state, path)


def _read_zip(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise ValueError(f"{path}: zip file without <prefix>/data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        if prefix + "byteorder" in names and zf.read(prefix + "byteorder") != b"little":
            raise ValueError(f"{path}: big-endian torch files are not supported")
        storages: dict[str, _Storage] = {}
        with zf.open(pkl[0]) as f:
            state = _RestrictedUnpickler(f, storages, path).load()
        for key, storage in storages.items():
            storage.data = np.frombuffer(zf.read(f"{prefix}data/{key}"), storage.dtype)
    return _materialize(state, path)


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
      ValueError: the file is not a flat state dict of tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)
