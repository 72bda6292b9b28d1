"""Torch-free import of OpenCLIP checkpoints into the linen :class:`CLIP`.

``load_clip(path)`` reads a state dict saved from ``open_clip.CLIP``
(``torch.save(model.state_dict())``: a zip or legacy ``.pt``/``.pth``/``.bin``
through :func:`jaxcxai.models.torch_io.read_state_dict`, whose restricted
unpickler runs no code; or a ``.safetensors`` file), takes the architecture
from a config (open_clip's JSON format, :func:`read_config`) or reads it off
the weight shapes (:func:`infer_config`), and maps every key onto the linen
variables strictly with :func:`jaxcxai.models.convert.torch_to_linen`: torch
``(out, in)`` linear weights and OIHW conv kernels are transposed, BatchNorm
running statistics go to ``batch_stats``, and missing, unexpected or
mis-shaped keys raise one :class:`WeightMismatchError` that lists them all.
Half-precision checkpoints (OpenAI's are float16) are cast to float32.
"""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.models.clip import CLIP, CLIPConfig
from jaxcxai.models.clip_config import infer_config, read_config
from jaxcxai.models.convert import WeightMismatchError, torch_to_linen
from jaxcxai.models.torch_io import read_state_dict

__all__ = [
    "WeightMismatchError",
    "abstract_variables",
    "canonical_keys",
    "convert_open_clip",
    "load_clip",
]

# Buffers open_clip may hold that are no weights (rebuilt from the config).
_BUFFERS = ("attn_mask", "visual.attn_mask")


def canonical_keys(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Brings a state dict to ``open_clip.CLIP``'s key layout.

    Drops a ``module.`` prefix on every key (DataParallel/DDP checkpoints),
    moves ``text.*`` keys of a ``CustomTextCLIP`` with open_clip's own text
    transformer to the top level, and drops the causal-mask buffer.
    """
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if "text.token_embedding.weight" in state and "token_embedding.weight" not in (
        state
    ):
        state = {
            (k[len("text.") :] if k.startswith("text.") else k): v
            for k, v in state.items()
        }
    return {k: v for k, v in state.items() if k not in _BUFFERS}


def abstract_variables(model: CLIP) -> dict[str, Any]:
    """The model's variable shapes (no allocation), for strict conversion."""
    v, t = model.config.vision, model.config.text
    images = jax.ShapeDtypeStruct((1, v.image_size, v.image_size, 3), jnp.float32)
    text = jax.ShapeDtypeStruct((1, t.context_length), jnp.int32)
    return jax.eval_shape(model.init, jax.random.key(0), images, text)


def convert_open_clip(
    state: Mapping[str, np.ndarray], model: CLIP, *, source: str = "state dict"
) -> dict[str, Any]:
    """Maps an open_clip state dict onto ``model``'s variables, strictly.

    Args:
      state: key -> array in open_clip's layout (after :func:`canonical_keys`).
      model: the linen CLIP whose config the weights must fit.
      source: the file, for error messages.

    Returns:
      ``{"params": ..., "batch_stats": ...}`` (``batch_stats`` for the
      ModifiedResNet only), float32 NumPy leaves.

    Raises:
      WeightMismatchError: listing every missing, unexpected and mis-shaped key
        with its shape.
      WeightFileError: a weight holds NaN or inf.
    """
    abstract = abstract_variables(model)
    variables = torch_to_linen(state, abstract, source=source)
    # torch_to_linen's np.ascontiguousarray turns the 0-d logit_scale into
    # shape (1,); restore the model's shapes.
    return jax.tree.map(lambda a, v: np.reshape(v, a.shape), abstract, variables)


def load_clip(
    path: str | os.PathLike,
    config: CLIPConfig | str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    quick_gelu: bool | None = None,
    vision_head_width: int = 64,
    text_head_width: int = 64,
) -> tuple[CLIP, dict[str, Any]]:
    """Loads an OpenCLIP checkpoint from a user path.

    Args:
      path: the state dict (``.pt``/``.pth``/``.bin`` torch file, or
        ``.safetensors``).
      config: the architecture: a :class:`CLIPConfig`, an open_clip config dict,
        a JSON file in open_clip's model-config format, or the name of a
        config inside the installed open-clip-torch (``"ViT-B-32"``). None:
        inferred from the weight shapes (then ``quick_gelu`` is required).
      quick_gelu: QuickGELU (OpenAI-trained weights) or exact GELU; overrides
        the config's value when given. The weights do not record it.
      vision_head_width: channels per image attention head, when inferring.
      text_head_width: channels per text attention head, when inferring.

    Returns:
      ``(model, variables)``: embed with
      ``model.apply(variables, images, method=model.encode_image)`` and
      ``model.apply(variables, ids, method=model.encode_text)``.

    Raises:
      ValueError: no config and no ``quick_gelu``; an unsupported config.
      WeightMismatchError: the weights do not fit (keys named).
      WeightFileError / UnsafePickleError: a corrupt or unsafe file.
    """
    source = os.fspath(path)
    state = canonical_keys(read_state_dict(path))
    if config is None:
        if quick_gelu is None:
            raise ValueError(
                "the activation is not stored in the weights: pass quick_gelu="
                "True for OpenAI-trained weights (open_clip's '-quickgelu' "
                "models), False for other open_clip weights, or pass config="
            )
        cfg = infer_config(
            state,
            quick_gelu=quick_gelu,
            vision_head_width=vision_head_width,
            text_head_width=text_head_width,
            source=source,
        )
    else:
        cfg = config if isinstance(config, CLIPConfig) else read_config(config)
        if quick_gelu is not None:
            cfg = dataclasses.replace(cfg, quick_gelu=quick_gelu)
    model = CLIP(cfg)
    return model, convert_open_clip(state, model, source=source)
