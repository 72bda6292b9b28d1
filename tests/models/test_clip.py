"""Torch-free OpenCLIP import (jaxcxai.models.clip*), checked against open_clip.

References: open-clip-torch's own outputs on two tiny random models, stored
by tests/fixtures/open_clip/make_fixtures.py (``<name>.npz``: embeddings,
logits and forward-hook activations; ``tokenizer.json``: tokenizer ids).
The checkpoints are the ``torch.save(model.state_dict())`` files users bring.
"""

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxcxai.models import clip_tokenizer
from jaxcxai.models.clip_config import infer_config, read_config
from jaxcxai.models.clip_tokenizer import ClipTokenizer
from jaxcxai.models.clip_weights import (
    WeightMismatchError,
    canonical_keys,
    convert_open_clip,
    load_clip,
)
from jaxcxai.models.torch_io import read_state_dict
from tests.paths import FIXTURES

FIX = Path(FIXTURES) / "open_clip"
NAMES = ("tiny-vit", "tiny-rn")
HEAD_WIDTHS = {"tiny-vit": (16, 8), "tiny-rn": (64, 4)}  # (vision, text)
HAS_VOCAB = importlib.util.find_spec("open_clip") is not None
needs_vocab = pytest.mark.skipif(
    not HAS_VOCAB, reason="pip install --no-deps open-clip-torch"
)


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    """Loads a fixture model and runs it once, all entry points in one jit
    (op-by-op calls would compile every primitive separately)."""
    name = request.param
    model, variables = load_clip(FIX / f"{name}.pt", FIX / f"{name}.json")
    golden = dict(np.load(FIX / f"{name}.npz"))
    images = golden["images"].transpose(0, 2, 3, 1)  # NCHW -> NHWC
    # Causal mask: padding after the end token changes nothing, so the rows
    # that end early, cut just past their end tokens, keep their embeddings.
    ends = golden["text"].argmax(-1)
    rows = np.flatnonzero(ends < golden["text"].shape[1] - 1)
    short = golden["text"][rows, : ends[rows].max() + 1]
    assert short.shape[0] >= 2 and short.shape[1] < golden["text"].shape[1]
    layer = "visual.layer4" if model.config.vision.is_resnet else "visual.ln_post"

    @jax.jit
    def run(v, x, t, t_short):
        out = model.apply(v, x, t)
        text_emb, _ = model.apply(v, t_short, method=model.encode_text)
        unit = model.apply(
            v, x, [layer], normalize_output=True, method=model.encode_image
        )
        return out, text_emb, unit

    out, short_emb, unit = run(variables, images, golden["text"], short)
    extra = {"short_emb": short_emb, "short_rows": rows, "unit": unit, "layer": layer}
    return name, model, variables, golden, *out, extra


def _nhwc(x):
    return x.transpose(0, 2, 3, 1)


def test_embeddings_match_open_clip(case):
    _, _, _, g, logits, acts, _ = case
    tol = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(acts["image_embeds"], g["image_embeds"], **tol)
    np.testing.assert_allclose(acts["text_embeds"], g["text_embeds"], **tol)
    np.testing.assert_allclose(logits, g["logits_per_image"], rtol=1e-5, atol=1e-4)


def test_activations_match_open_clip(case):
    name, model, _, g, _, acts, _ = case
    expected = {"ln_final": g["act:ln_final"]}
    for i in range(model.config.text.layers):
        expected[f"transformer.resblocks.{i}"] = g[f"act:transformer.resblocks.{i}"]
    if name == "tiny-rn":
        expected["visual.stem"] = _nhwc(g["act:visual.avgpool"])
        for k in range(1, 5):
            expected[f"visual.layer{k}"] = _nhwc(g[f"act:visual.layer{k}"])
    else:
        conv = _nhwc(g["act:visual.conv1"])
        expected["visual.conv1"] = conv
        expected["visual.ln_post"] = g["act:visual.ln_post"][:, 0]
        for i in range(model.config.vision.layers):
            tokens = g[f"act:visual.transformer.resblocks.{i}"]
            key = f"visual.transformer.resblocks.{i}"
            expected[key] = tokens[:, 1:].reshape(conv.shape)
            expected[key + ".cls"] = tokens[:, 0]
    for key, ref in expected.items():
        np.testing.assert_allclose(acts[key], ref, rtol=1e-5, atol=2e-5, err_msg=key)
    # The pooled text token sits at the end token (largest id) of each row.
    rows = np.arange(len(g["text"]))
    pooled = g["act:ln_final"][rows, g["text"].argmax(-1)]
    np.testing.assert_allclose(acts["ln_final.pooled"], pooled, atol=2e-5)


def test_inferred_config_equals_json(case):
    name, model, *_ = case
    state = canonical_keys(read_state_dict(FIX / f"{name}.pt"))
    vision_hw, text_hw = HEAD_WIDTHS[name]
    cfg = infer_config(
        state,
        quick_gelu=name == "tiny-rn",
        vision_head_width=vision_hw,
        text_head_width=text_hw,
    )
    assert cfg == model.config == read_config(FIX / f"{name}.json")
    assert model.config.quick_gelu == (name == "tiny-rn")


def test_short_text_and_single_tower(case):
    _, _, _, g, _, acts, extra = case
    tol = {"rtol": 1e-5, "atol": 1e-5}
    ref = g["text_embeds"][extra["short_rows"]]
    np.testing.assert_allclose(extra["short_emb"], ref, **tol)
    unit, sel = extra["unit"]
    ref = g["image_embeds"] / np.linalg.norm(g["image_embeds"], axis=1, keepdims=True)
    np.testing.assert_allclose(unit, ref, atol=1e-5)
    assert list(sel) == [extra["layer"]]
    np.testing.assert_array_equal(sel[extra["layer"]], acts[extra["layer"]])


def test_safetensors_and_prefixes_load_the_same(tmp_path):
    state = read_state_dict(FIX / "tiny-rn.pt")  # float16, as OpenAI's
    assert state["text_projection"].dtype == np.float16
    path = tmp_path / "ddp.safetensors"
    save_file({f"module.{k}": v for k, v in state.items()}, path)
    ref_model, ref = load_clip(FIX / "tiny-rn.pt", FIX / "tiny-rn.json")
    model, got = load_clip(path, quick_gelu=True, text_head_width=4)
    assert model.config == ref_model.config
    jax.tree.map(np.testing.assert_array_equal, got, ref)
    assert got["params"]["text_projection"].dtype == np.float32


def _state(name="tiny-vit"):
    return canonical_keys(read_state_dict(FIX / f"{name}.pt"))


def test_bad_checkpoints_name_the_key():
    model, _ = load_clip(FIX / "tiny-vit.pt", FIX / "tiny-vit.json")
    state = _state()
    del state["visual.proj"]
    state["visual.extra_head"] = np.zeros(3, np.float32)
    state["text_projection"] = state["text_projection"].T
    with pytest.raises(WeightMismatchError) as err:
        convert_open_clip(state, model, source="bad.pt")
    msg = str(err.value)
    assert "bad.pt" in msg
    assert "1 missing key(s):\n    visual.proj (32, 24)" in msg
    assert "1 unexpected key(s):\n    visual.extra_head (3,)" in msg
    assert "text_projection: file (24, 32), model expects (32, 24)" in msg
    # Inference names the key it cannot find.
    with pytest.raises(WeightMismatchError, match="'visual.proj' is missing"):
        infer_config(state, quick_gelu=False)
    other = {k: v for k, v in _state().items() if not k.startswith("visual.")}
    other["visual.trunk.stem.weight"] = np.zeros(1, np.float32)
    with pytest.raises(WeightMismatchError, match="neither an open_clip ViT"):
        infer_config(other, quick_gelu=False)


def test_bad_configs_and_inputs(tmp_path):
    with pytest.raises(ValueError, match="pass quick_gelu"):
        load_clip(FIX / "tiny-vit.pt")
    with pytest.raises(ValueError, match="not a multiple of head_width 64"):
        load_clip(FIX / "tiny-vit.pt", quick_gelu=False, text_head_width=8)
    cfg = json.loads((FIX / "tiny-vit.json").read_text())
    cfg["vision_cfg"] |= {"timm_model_name": "convnext_tiny", "fancy": 1}
    with pytest.raises(
        ValueError,
        match="vision: timm_model_name='convnext_tiny'; vision: unknown field 'fancy'",
    ):
        read_config(cfg)
    cfg = json.loads((FIX / "tiny-vit.json").read_text())
    cfg["vision_cfg"]["image_size"] = 48  # position table no longer fits
    with pytest.raises(WeightMismatchError, match="visual.positional_embedding"):
        load_clip(FIX / "tiny-vit.pt", cfg)
    with pytest.raises(FileNotFoundError, match="no-deps open-clip-torch"):
        read_config(tmp_path / "nope.json")
    model, variables = load_clip(FIX / "tiny-vit.pt", FIX / "tiny-vit.json")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply(variables, np.full((1, 4), 512), method=model.encode_text)
    with pytest.raises(ValueError, match="context_length is 16"):
        model.apply(variables, np.ones((1, 17), int), method=model.encode_text)
    with pytest.raises(ValueError, match="position table"):
        model.apply(variables, np.zeros((1, 48, 48, 3)), method=model.encode_image)


@needs_vocab
def test_bundled_open_clip_configs():
    vit = read_config("ViT-B-32")
    assert (vit.vision.width, vit.vision.patch_size, vit.vision.num_heads) == (
        768,
        32,
        12,
    )
    rn = read_config("RN50-quickgelu")
    assert rn.vision.layers == (3, 4, 6, 3) and rn.quick_gelu
    assert rn.vision.num_heads == 32 and rn.embed_dim == 1024
    with pytest.raises(ValueError, match="init_logit_bias=-10.*no_causal_mask=True"):
        read_config("ViT-B-16-SigLIP")


@pytest.fixture(scope="module")
def tokenizer():
    if not HAS_VOCAB:
        pytest.skip("pip install --no-deps open-clip-torch")
    return ClipTokenizer()


def test_tokenizer_matches_open_clip(tokenizer):
    golden = json.loads((FIX / "tokenizer.json").read_text())
    for case in golden["cases"]:
        ids = tokenizer([case["text"]], case["context_length"])[0]
        n = len(case["ids"])
        assert ids[:n].tolist() == case["ids"], case["text"]
        assert not ids[n:].any()
    assert tokenizer.vocab_size == 49408
    assert (tokenizer.sot_id, tokenizer.eot_id) == (49406, 49407)
    ids = tokenizer.encode("A photo of a cat")
    assert tokenizer.decode(ids) == "a photo of a cat "


def test_tokenizer_feeds_the_full_vocab_model(tokenizer):
    g = np.load(FIX / "tiny-rn.npz")
    ids = tokenizer(g["captions"].tolist(), context_length=24)
    np.testing.assert_array_equal(ids, g["text"])


def test_tokenizer_without_open_clip(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps open-clip"):
        clip_tokenizer.bpe_vocab_path()
    bad = tmp_path / "vocab.txt.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a gzipped BPE merge file"):
        ClipTokenizer(bad)


def _import_open_clip():
    # Checked before importing: importing torch alone takes seconds.
    for mod in ("torch", "torchvision", "ftfy", "regex", "timm", "open_clip"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"open_clip needs {mod}, which is not installed")
    try:
        import open_clip  # noqa: PLC0415
        import torch  # noqa: PLC0415
    except Exception as e:  # torchvision fails with RuntimeError beside CPU torch
        pytest.skip(f"open_clip not importable: {type(e).__name__}: {e}")
    return open_clip, torch


def test_live_against_open_clip():
    open_clip, torch = _import_open_clip()
    cfg = json.loads((FIX / "tiny-vit.json").read_text())
    open_clip.factory._MODEL_CONFIGS["tiny-vit-live"] = cfg
    ref = open_clip.create_model("tiny-vit-live", pretrained=None).eval()
    ref.load_state_dict(torch.load(FIX / "tiny-vit.pt", weights_only=True))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
    text = rng.integers(1, 511, size=(3, 16))
    text[:, 10] = 511
    with torch.no_grad():
        img = ref.encode_image(torch.from_numpy(images)).numpy()
        txt = ref.encode_text(torch.from_numpy(text)).numpy()
    model, variables = load_clip(FIX / "tiny-vit.pt", cfg)
    got, _ = model.apply(variables, _nhwc(images), method=model.encode_image)
    np.testing.assert_allclose(got, img, rtol=1e-5, atol=1e-5)
    got, _ = model.apply(variables, text, method=model.encode_text)
    np.testing.assert_allclose(got, txt, rtol=1e-5, atol=1e-5)
