"""Geometry checks that keep a weight file's tensors inside the bytes holding them.

A torch tensor is a strided view of a storage: element ``(i_0, ..., i_{n-1})``
lives at storage element ``offset + sum_k i_k * stride_k``. A truncated or crafted
file can declare sizes, strides or an offset that reach past its storage; a NumPy
view built from them would read foreign heap memory, and a large enough stride
crashes the process. Every view is therefore checked here with exact Python
integers before any array is built, and every failure is a
:class:`WeightFileError` that names the file and the tensor.
"""

import math
from collections.abc import Sequence

__all__ = ["WeightFileError", "check_record_size", "check_view", "describe_users"]

# Byte sizes and strides must fit NumPy's signed index type with room to spare;
# a larger one is corrupt (no real weight tensor is 4 EiB).
_MAX_BYTES = 2**62


class WeightFileError(ValueError):
    """A weight file is truncated, inconsistent or points outside its buffers.

    The message starts with the file's path and names the tensor (parameter)
    concerned, e.g. ``"w.pth: tensor 'bn.running_var': view (size (4,), stride
    (1,), offset 2) reaches element 5 of storage '0', which holds 3 elements"``.
    """


def _is_int(x) -> bool:
    # bool is an int subclass but never a legitimate size or stride.
    return isinstance(x, int) and not isinstance(x, bool)


def describe_users(names: Sequence[str]) -> str:
    """``"tensor 'a'"`` / ``"tensors 'a', 'b' (+3 more)"`` for error messages."""
    names = list(names)
    if not names:
        return "no tensor"
    shown = ", ".join(repr(n) for n in names[:3])
    more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
    return f"tensor{'s' if len(names) > 1 else ''} {shown}{more}"


def check_view(
    path: str,
    name: str,
    size,
    stride,
    offset,
    storage_numel: int,
    itemsize: int,
    storage: str,
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Validates one strided view against the storage it reads.

    Args:
      path: the weight file (for messages).
      name: the tensor's name in the state dict (for messages).
      size, stride: the view's shape and element strides (sequences of ints).
      offset: first element of the view in the storage.
      storage_numel: elements the storage (or storage slice) really holds.
      itemsize: bytes per element.
      storage: the storage's key (for messages).

    Returns:
      ``(size, stride, offset)`` as plain ints, safe for ``as_strided``.

    Raises:
      WeightFileError: non-integer or negative sizes, strides or offset, a
        stride or size whose byte count overflows, or a view whose last element
        ``offset + sum((size_i - 1) * stride_i)`` is not inside the storage.
    """
    where = f"{path}: tensor {name!r}"
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise WeightFileError(f"{where}: size {size!r} / stride {stride!r} not tuples")
    if not all(map(_is_int, (*size, *stride, offset))):
        raise WeightFileError(
            f"{where}: size {size!r}, stride {stride!r} and offset {offset!r} "
            "must be integers"
        )
    size, stride, offset = tuple(size), tuple(stride), int(offset)
    if len(size) != len(stride):
        raise WeightFileError(
            f"{where}: size {size} and stride {stride} have different ranks"
        )
    if min(size, default=0) < 0 or offset < 0:
        raise WeightFileError(f"{where}: negative size {size} or offset {offset}")
    if min(stride, default=0) < 0:
        raise WeightFileError(
            f"{where}: negative stride {stride} (torch never saves one; the file "
            "is corrupt)"
        )
    numel = math.prod(size)
    if numel * itemsize > _MAX_BYTES or max(stride, default=0) * itemsize > _MAX_BYTES:
        raise WeightFileError(
            f"{where}: size {size} / stride {stride} overflow the address space"
        )
    if numel == 0:
        return size, stride, offset
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage_numel:
        raise WeightFileError(
            f"{where}: view (size {size}, stride {stride}, offset {offset}) "
            f"reaches element {last} of storage {storage!r}, which holds "
            f"{storage_numel} elements"
        )
    return size, stride, offset


def check_record_size(
    path: str,
    record: str,
    nbytes: int,
    numel: int,
    itemsize: int,
    users: Sequence[str],
) -> None:
    """A storage's data must be exactly the ``numel * itemsize`` bytes declared.

    Raises:
      WeightFileError: naming the record and the tensors that view it; a short
        record means a truncated file.
    """
    want = numel * itemsize
    if nbytes != want:
        cut = "truncated: " if nbytes < want else ""
        raise WeightFileError(
            f"{path}: {cut}storage {record!r} of {describe_users(users)} holds "
            f"{nbytes} bytes, but the pickle declares {numel} elements of "
            f"{itemsize} bytes ({want} bytes)"
        )
