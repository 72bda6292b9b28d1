"""Malformed weight files: every crafted, truncated or inconsistent file raises
WeightFileError naming the file and the tensor, never returns foreign memory and
never crashes. Files are written by hand here (pickle opcodes, zip records,
safetensors headers), independently of the readers under test; valid files are
checked against NumPy views and the safetensors library."""

import collections
import io
import json
import pickle
import struct
import zipfile

import jax
import numpy as np
import pytest

from jaxcxai.models import convert, pretrained, torch_io
from jaxcxai.models.weight_checks import WeightFileError

# ---------------------------------------------------------------------------
# A torch-free writer of the legacy and zip .pth layouts.


class _Global:
    """Pickled as a GLOBAL opcode naming `module.name`, imported by nobody."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce insists on a callable.
        raise AssertionError("never called")


class Stor:
    """A storage: raw elements plus the element count the pickle declares."""

    def __init__(self, key, data, numel=None, view=None):
        self.key, self.data = key, np.ascontiguousarray(data).ravel()
        self.numel = self.data.size if numel is None else numel
        self.view = view  # Legacy (view key, offset, numel) or None.


class Tens:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride))


_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


class _Pickler(pickle._Pickler):  # The pure-Python pickler lets save() be hooked.
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, Stor):
            kind = _Global("torch", _TYPES[obj.data.dtype])
            return ("storage", kind, obj.key, "cpu", obj.numel, obj.view)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Tens):
            args = (*obj.args, False, collections.OrderedDict())
            return (_Global("torch._utils", "_rebuild_tensor_v2"), args)
        return NotImplemented


def _pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_legacy(path, state, storages, counts=None):
    """Legacy .pth; `counts` overrides the element count written per storage."""
    with open(path, "wb") as f:
        f.write(_pickle(0x1950A86A20F9469CFC6C) + _pickle(1001))
        f.write(_pickle({"protocol_version": 1001, "little_endian": True}))
        f.write(_pickle(collections.OrderedDict(state)))
        f.write(_pickle([s.key for s in storages]))
        for i, s in enumerate(storages):
            n = s.data.size if counts is None else counts[i]
            f.write(struct.pack("<q", n) + s.data.tobytes())


def write_zip(path, state, storages, skip=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", _pickle(collections.OrderedDict(state)))
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            if s.key not in skip:
                zf.writestr(f"archive/data/{s.key}", s.data.tobytes())


WRITERS = {"legacy": write_legacy, "zip": write_zip}


def _view_file(tmp_path, fmt, size, stride, offset=0, numel=3):
    """One tensor 'bn.running_var' viewing a storage of `numel` floats."""
    s = Stor("0", np.arange(numel, dtype=np.float32))
    path = tmp_path / f"w_{fmt}.pth"
    WRITERS[fmt](path, {"bn.running_var": Tens(s, offset, size, stride)}, [s])
    return path


def _raises(path, *patterns):
    with pytest.raises(WeightFileError) as info:
        torch_io.read_state_dict(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for p in patterns:
        assert p in msg, msg
    return msg


# ---------------------------------------------------------------------------
# Views against their storage.


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_view_reaching_past_storage_is_rejected_at_the_exact_boundary(tmp_path, fmt):
    # Reference: element index offset + sum((n - 1) * s) of a NumPy view.
    data = np.arange(6, dtype=np.float32)
    for size, stride, offset in [
        ((2, 3), (3, 1), 0),
        ((3, 2), (1, 3), 0),
        ((5,), (1,), 1),
    ]:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        assert last == 5  # Exactly the storage's last element: valid.
        path = _view_file(tmp_path, fmt, size, stride, offset, numel=6)
        got = torch_io.read_state_dict(path)["bn.running_var"]
        want = np.lib.stride_tricks.as_strided(
            data[offset:], size, tuple(4 * s for s in stride)
        )
        np.testing.assert_array_equal(got, want)
        # One element further reads past the storage (it used to return heap bytes).
        path = _view_file(tmp_path, fmt, size, stride, offset + 1, numel=6)
        _raises(path, "'bn.running_var'", "reaches element 6", "holds 6 elements")


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_short_storage_for_size_and_stride(tmp_path, fmt):
    # A BatchNorm statistic of 4 values over a 3-element storage.
    _raises(_view_file(tmp_path, fmt, (4,), (1,)), "'bn.running_var'", "element 3")


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
@pytest.mark.parametrize(
    "size, stride, words",
    [
        ((2,), (2**40,), "reaches element"),  # used to segfault
        ((2, 2), (2**62, 1), "overflow"),
        ((1,), (2**63,), "overflow"),  # size 1: the stride never moves, still bogus
        ((2**61, 2), (0, 0), "overflow"),
        ((3,), (-1,), "negative stride"),
        ((-1,), (1,), "negative size"),
        ((2, 2), (1,), "different ranks"),
        ((2.0,), (1,), "must be integers"),
    ],
)
def test_bad_strides_and_sizes(tmp_path, fmt, size, stride, words):
    _raises(_view_file(tmp_path, fmt, size, stride), "'bn.running_var'", words)


def test_negative_offset_and_bad_storage_view(tmp_path):
    _raises(_view_file(tmp_path, "zip", (1,), (1,), offset=-1), "negative")
    # Legacy pre-0.4 storage view (view key, offset, numel) beyond its base.
    base = Stor("0", np.arange(4, dtype=np.float32), view=("v", 2, 5))
    path = tmp_path / "view.pth"
    write_legacy(path, {"w": Tens(base, 0, (1,), (1,))}, [base])
    _raises(path, "tensor 'w'", "storage view (2, 5)")


# ---------------------------------------------------------------------------
# Truncated, missing and inconsistent storage records.


def _two_tensor_state():
    a = Stor("0", np.arange(6, dtype=np.float32))
    b = Stor("1", np.arange(8, dtype=np.float32))
    state = {
        "conv.weight": Tens(a, 0, (2, 3), (3, 1)),
        "fc.bias": Tens(b, 0, (8,), (1,)),
    }
    return state, [a, b]


def test_truncated_zip_names_the_cut_tensor(tmp_path):
    state, storages = _two_tensor_state()
    path = tmp_path / "model.pth"
    write_zip(path, state, storages)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("archive/data/1")
    # Cut inside the record of storage 1 (fc.bias): the directory is gone too.
    cut = tmp_path / "cut.pth"
    cut.write_bytes(raw[: info.header_offset + 40])
    _raises(cut, "truncated zip archive", "'archive/data/1'", "'fc.bias'")
    # Cut only the central directory: all records intact, still an error.
    cut.write_bytes(raw[: raw.rindex(b"PK\x01\x02")])
    _raises(cut, "truncated zip archive", "cut short")
    # Cut before data.pkl finished: nothing to name but the file.
    cut.write_bytes(raw[:20])
    _raises(cut, "truncated zip archive", "data.pkl")


def test_missing_and_short_zip_records(tmp_path):
    state, storages = _two_tensor_state()
    path = tmp_path / "missing.pth"
    write_zip(path, state, storages, skip={"0"})
    _raises(path, "'archive/data/0'", "'conv.weight'", "missing")
    storages[1].data = storages[1].data[:5]  # 20 bytes for 8 declared floats
    storages[1].numel = 8
    path = tmp_path / "short.pth"
    write_zip(path, state, storages)
    _raises(path, "truncated", "'fc.bias'", "holds 20 bytes", "(32 bytes)")


def test_corrupt_zip_record_crc(tmp_path):
    state, storages = _two_tensor_state()
    path = tmp_path / "crc.pth"
    write_zip(path, state, storages)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("archive/data/0")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start] ^= 0xFF  # flip a data byte: CRC-32 no longer matches
    path.write_bytes(bytes(raw))
    _raises(path, "'archive/data/0'", "'conv.weight'", "corrupt")


def test_truncated_legacy_file_names_the_tensor(tmp_path):
    state, storages = _two_tensor_state()
    path = tmp_path / "legacy.pth"
    write_legacy(path, state, storages)
    raw = path.read_bytes()
    path.write_bytes(raw[:-12])  # inside fc.bias's data
    _raises(path, "truncated", "'fc.bias'")
    path.write_bytes(raw[: len(raw) - 32 - 3])  # inside its element count
    _raises(path, "truncated before storage '1'", "'fc.bias'")
    path.write_bytes(raw[:30])  # inside the pickles
    _raises(path, "truncated or corrupt")
    write_legacy(path, state, storages, counts=[6, 7])
    _raises(path, "storage '1'", "'fc.bias'", "7 elements in the file, 8")


def test_garbage_and_unsafe_files_are_weight_file_errors(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"\x80\x02not a pickle at all")
    _raises(path, "truncated or corrupt")
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("a/data.pkl", b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(torch_io.UnsafePickleError, match="os.system") as info:
        torch_io.read_state_dict(evil)
    assert isinstance(info.value, WeightFileError) and str(evil) in str(info.value)
    bad_npz = tmp_path / "w.npz"
    bad_npz.write_bytes(b"PK\x03\x04 truncated")
    _raises(bad_npz, "not a readable .npz")


def test_load_weights_reports_the_file(tmp_path):
    path = _view_file(tmp_path, "zip", (4,), (1,))
    with pytest.raises(WeightFileError, match="w_zip.pth.*bn.running_var"):
        pretrained.load_weights("small_cnn", path)


# ---------------------------------------------------------------------------
# safetensors headers.


def _safetensors(path, header, buffer: bytes, length=None):
    raw = json.dumps(header).encode()
    n = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + raw + buffer)
    return path


def test_hand_built_safetensors_matches_the_reference_library(tmp_path):
    from safetensors.numpy import load_file

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], np.int64)
    header = {
        "__metadata__": {"format": "np"},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
        "e": {"dtype": "F32", "shape": [0, 4], "data_offsets": [40, 40]},
    }
    path = _safetensors(tmp_path / "ok.safetensors", header, a.tobytes() + b.tobytes())
    got, ref = torch_io.read_state_dict(path), load_file(str(path))
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype
        np.testing.assert_array_equal(got[k], ref[k])


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, "outside"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, "outside"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "needs 12"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, "needs 4"),
        ({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, "shape"),
        ({"w": {"dtype": "F32", "shape": [2]}}, "data_offsets"),
        (
            {
                "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
            },
            "overlap",
        ),
    ],
)
def test_safetensors_bad_entries(tmp_path, entries, words):
    path = _safetensors(tmp_path / "bad.safetensors", entries, bytes(16))
    msg = _raises(path, words)
    assert "tensor 'w'" in msg or "'v'" in msg


def test_safetensors_bad_header(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    p = tmp_path / "h.safetensors"
    _raises(_safetensors(p, header, bytes(8), length=2**40), "header length")
    _raises(_safetensors(p, header, bytes(8), length=1), "header length")
    p.write_bytes(b"\x05\x00")
    _raises(p, "no 8-byte header length")
    p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}" + bytes(8))
    _raises(p, "not valid UTF-8 JSON")
    raw = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": 1}'
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    _raises(p, "duplicate keys ['w']")


# ---------------------------------------------------------------------------
# Non-finite weights at conversion.


def test_conversion_rejects_non_finite_weights():
    spec = lambda *s: jax.ShapeDtypeStruct(s, np.float32)
    abstract = {"params": {"fc": {"kernel": spec(3, 2), "bias": spec(2)}}}
    weight = np.ones((2, 3), np.float32)
    weight[1, :2] = [np.nan, np.inf]
    state = {"fc.weight": weight, "fc.bias": np.zeros(2, np.float32)}
    with pytest.raises(
        WeightFileError, match=r"w\.pth: 1 tensor.*fc\.weight \(2 of 6\)"
    ):
        convert.torch_to_linen(state, abstract, source="w.pth")
    state["fc.weight"] = np.ones((2, 3), np.float32)
    out = convert.torch_to_linen(state, abstract, source="w.pth")
    np.testing.assert_array_equal(out["params"]["fc"]["kernel"], state["fc.weight"].T)
