"""The restricted unpickler for torch state dicts and the tensors it rebuilds.

The pickles are read with an unpickler that resolves only the tensor rebuild
functions, the ``torch.*Storage`` types and ``collections.OrderedDict``. Any other
global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError`,
so loading an untrusted file never runs its code. Tensors come back as lazy
strided views; :func:`materialize` checks each one against its storage
(:func:`jaxcxai.models.weight_checks.check_view`) before copying it out.
"""

import collections
import pickle
import struct
from typing import Any

import ml_dtypes
import numpy as np

from jaxcxai.models.weight_checks import WeightFileError, check_view

__all__ = ["UnsafePickleError", "materialize", "storage_users", "unpickle"]

# torch storage class name -> numpy dtype of one element.
STORAGE_DTYPES = {
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


class UnsafePickleError(WeightFileError, pickle.UnpicklingError):
    """A weight file's pickle referenced a global outside the tensor allow-list."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only its dtype matters here."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class Storage:
    """A storage referenced from the pickle; ``data`` is filled in once read."""

    def __init__(self, dtype: np.dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.data: np.ndarray | None = None


class _StorageView:
    """A pre-0.4 storage view: ``numel`` elements of ``base`` from ``offset``."""

    def __init__(self, base: Storage, offset, numel):
        self.base, self.offset, self.numel = base, offset, numel


class _LazyTensor:
    """A strided view of a storage; materialised after all storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = (
            storage,
            offset,
            size,
            stride,
        )

    def base(self) -> Storage | None:
        if isinstance(self.storage, _StorageView):
            return self.storage.base
        return self.storage if isinstance(self.storage, Storage) else None

    def materialize(self, path: str, name: str) -> np.ndarray:
        base, start, limit = self.base(), 0, None
        if base is None:
            raise WeightFileError(
                f"{path}: tensor {name!r} is not backed by a storage "
                f"(got {type(self.storage).__name__})"
            )
        if base.data is None:
            raise WeightFileError(
                f"{path}: tensor {name!r}: storage {base.key!r} has no data in the file"
            )
        if isinstance(self.storage, _StorageView):
            start, limit = self.storage.offset, self.storage.numel
            ok = _nonneg_int(start) and _nonneg_int(limit)
            if not (ok and start + limit <= base.data.size):
                raise WeightFileError(
                    f"{path}: tensor {name!r}: storage view ({start}, {limit}) lies "
                    f"outside storage {base.key!r} of {base.data.size} elements"
                )
        else:
            limit = base.data.size
        size, stride, offset = check_view(
            path,
            name,
            self.size,
            self.stride,
            self.offset,
            limit,
            base.dtype.itemsize,
            base.key,
        )
        if 0 in size:
            return np.zeros(size, base.dtype)
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base.data[start + offset :],
            shape=size,
            strides=tuple(s * itemsize for s in stride),
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


def _nonneg_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; storages come back as `Storage`."""

    def __init__(self, file, storages: dict[str, Storage], what: str):
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafePickleError(
            f"{self._what}: refusing to load global '{module}.{name}'; only tensor "
            "rebuild functions, torch storage types and OrderedDict are allowed "
            "(the file is not a plain state dict, or it is malicious)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightFileError(f"{self._what}: unknown persistent id {pid!r:.200}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise WeightFileError(
                f"{self._what}: unsupported storage type {storage_type!r:.100}"
            )
        if not isinstance(key, (str, int)) or not _nonneg_int(numel):
            raise WeightFileError(
                f"{self._what}: bad storage record key={key!r:.100} numel={numel!r:.100}"
            )
        key = str(key)
        storage = self._storages.setdefault(
            key, Storage(storage_type.dtype, key, numel)
        )
        if storage.dtype != storage_type.dtype or storage.numel != numel:
            raise WeightFileError(
                f"{self._what}: storage {key!r} is declared twice, as {numel} x "
                f"{storage_type.name} and as {storage.numel} x {storage.dtype}"
            )
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # Pre-0.4 storage views: (view key, offset, numel).
            if not (isinstance(view, tuple) and len(view) == 3):
                raise WeightFileError(f"{self._what}: bad storage view {view!r:.100}")
            return _StorageView(storage, view[1], view[2])
        return storage


# What a malformed pickle raises from inside the pickle machinery.
_PICKLE_FAILURES = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    struct.error,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
)


def unpickle(file, storages: dict[str, Storage], path: str, what: str) -> Any:
    """Loads one pickle from ``file``; a malformed one is a WeightFileError."""
    try:
        return _RestrictedUnpickler(file, storages, path).load()
    except WeightFileError:
        raise  # Includes UnsafePickleError; already names the file.
    except _PICKLE_FAILURES as e:
        raise WeightFileError(
            f"{path}: {what} is truncated or corrupt ({type(e).__name__}: {e})"
        ) from e


def _check_state(obj: Any, path: str) -> dict:
    if not isinstance(obj, dict):
        raise WeightFileError(
            f"{path}: expected a state dict, got {type(obj).__name__}"
        )
    for key, value in obj.items():
        if not isinstance(value, _LazyTensor):
            raise WeightFileError(
                f"{path}: entry {key!r} is {type(value).__name__}, not a tensor"
            )
    return obj


def storage_users(obj: Any, path: str) -> dict[str, list[str]]:
    """Storage key -> names of the state-dict tensors that view it."""
    users: dict[str, list[str]] = {}
    for key, value in _check_state(obj, path).items():
        base = value.base()
        if base is not None:
            users.setdefault(base.key, []).append(str(key))
    return users


def materialize(obj: Any, path: str) -> dict[str, np.ndarray]:
    """Checks and copies out every tensor of an unpickled state dict."""
    return {
        str(k): v.materialize(path, str(k)) for k, v in _check_state(obj, path).items()
    }
