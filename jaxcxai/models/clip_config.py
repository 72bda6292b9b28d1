"""CLIP architectures from open_clip model-config JSON or from state-dict shapes.

Two sources give a :class:`jaxcxai.models.clip.CLIPConfig`:

* :func:`read_config`: open_clip's model-config format (``{"embed_dim",
  "quick_gelu", "vision_cfg": {...}, "text_cfg": {...}}``) as a dict, a JSON
  file, or the name of a config inside the installed ``open-clip-torch``
  (``"ViT-B-32"``, ``"RN50-quickgelu"``). Options outside the plain CLIP model
  (timm or HF towers, attentional pooling, layer scale, SigLIP's bias,
  non-causal text...) raise a ValueError naming them.
* :func:`infer_config`: reads widths, depths, patch size, image size, context
  length, vocabulary and embedding size off the weight shapes, as open_clip's
  ``build_model_from_openai_state_dict`` does. Two things are not in the
  weights and must be given: the activation (``quick_gelu``) and the head
  width (64 in all open_clip configs except ViT-H/g/bigG image towers).
"""

import importlib.util
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxcxai.models.clip import CLIPConfig, TextConfig, VisionConfig
from jaxcxai.models.convert import WeightMismatchError

__all__ = ["config_from_open_clip", "infer_config", "read_config"]

# Fields that change nothing in the forward pass of the plain CLIP model.
_IGNORED = {
    "top": {"custom_text", "init_logit_scale"},
    "vision": {"patch_dropout", "output_tokens", "attn_pooler_queries",
               "attn_pooler_heads", "timm_model_pretrained", "timm_pool",
               "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path"},
    "text": {"hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs",
             "output_tokens", "pad_id", "eos_id", "hf_model_pretrained",
             "hf_proj_type", "hf_pooler_type"},
}  # fmt: skip
_CUSTOM_BLOCK = {
    "block_type": (None, "default"),
    "qk_norm": (False,),
    "scaled_cosine_attn": (False,),
    "scale_heads": (False,),
    "scale_attn_inner": (False,),
    "scale_attn": (False,),
    "scale_fc": (False,),
    "ls_init_value": (None,),
    "act_kwargs": (None,),
    "norm_kwargs": (None,),
    "final_ln_after_pool": (False,),
}
# Fields whose non-default values this port does not implement.
_SUPPORTED_VALUES = {
    "top": {
        "init_logit_bias": (None,),
        "nonscalar_logit_scale": (False,),
        "multimodal_cfg": (None,),
    },
    "vision": _CUSTOM_BLOCK
    | {
        "timm_model_name": (None,),
        "attentional_pool": (False,),
        "no_ln_pre": (False,),
        "pool_type": ("tok",),
        # sin_cos_2d tables are saved as `positional_embedding` too.
        "pos_embed_type": ("learnable", "sin_cos_2d"),
    },
    "text": _CUSTOM_BLOCK
    | {
        "hf_model_name": (None,),
        "embed_cls": (False,),
        "no_causal_mask": (False,),
        "pool_type": ("argmax",),
        "proj_bias": (False,),
        "proj_type": ("linear",),
    },
}
_USED = {
    "top": {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"},
    "vision": {"image_size", "layers", "width", "patch_size", "head_width",
               "mlp_ratio"},
    "text": {"context_length", "vocab_size", "width", "heads", "layers",
             "mlp_ratio"},
}  # fmt: skip


def _problems(cfg: Mapping[str, Any], part: str) -> list[str]:
    """Unsupported values and unknown fields of one part of the config."""
    bad = [
        f"{part}: {k}={cfg[k]!r}"
        for k, allowed in _SUPPORTED_VALUES[part].items()
        if k in cfg and cfg[k] not in allowed
    ]
    known = _USED[part] | _IGNORED[part] | set(_SUPPORTED_VALUES[part])
    return bad + [f"{part}: unknown field {k!r}" for k in sorted(set(cfg) - known)]


def _side(value: Any, what: str) -> int:
    if isinstance(value, list | tuple):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{what} must be square, got {value}")
        value = value[0]
    return int(value)


def config_from_open_clip(cfg: Mapping[str, Any]) -> CLIPConfig:
    """Parses open_clip's model-config dict.

    Raises:
      ValueError: a missing ``embed_dim``/``vision_cfg``, or an option the
        plain CLIP model of this port does not implement (named).
    """
    missing = [k for k in ("embed_dim", "vision_cfg") if k not in cfg]
    if missing:
        raise ValueError(f"open_clip config lacks {missing}")
    v, t = dict(cfg["vision_cfg"]), dict(cfg.get("text_cfg", {}))
    problems = _problems(cfg, "top") + _problems(v, "vision") + _problems(t, "text")
    if problems:
        raise ValueError(
            "open_clip config not supported by this CLIP port (plain CLIP with "
            "an open_clip ViT/ModifiedResNet and text transformer): "
            + "; ".join(problems)
        )
    layers = v.get("layers", 12)
    resnet = isinstance(layers, list | tuple)
    vision = VisionConfig(
        image_size=_side(v.get("image_size", 224), "image_size"),
        width=int(v.get("width", 768)),
        layers=tuple(int(n) for n in layers) if resnet else int(layers),
        patch_size=None if resnet else _side(v.get("patch_size", 16), "patch_size"),
        head_width=int(v.get("head_width", 64)),
        mlp_ratio=float(v.get("mlp_ratio", 4.0)),
    )
    fields = {f: t[f] for f in _USED["text"] if f in t}
    return CLIPConfig(
        embed_dim=int(cfg["embed_dim"]),
        vision=vision,
        text=TextConfig(**fields),
        quick_gelu=bool(cfg.get("quick_gelu", False)),
    )


def read_config(config: str | os.PathLike | Mapping[str, Any]) -> CLIPConfig:
    """A config from a dict, a JSON file, or an open_clip config name.

    Raises:
      FileNotFoundError: neither a file nor a config of the installed
        open-clip-torch (``pip install --no-deps open-clip-torch``).
    """
    if isinstance(config, Mapping):
        return config_from_open_clip(config)
    path = Path(config)
    if not path.is_file():
        spec = importlib.util.find_spec("open_clip")
        where = spec.submodule_search_locations if spec else None
        bundled = Path(list(where)[0]) / "model_configs" / f"{config}.json"
        if not where or not bundled.is_file():
            raise FileNotFoundError(
                f"CLIP config {str(config)!r}: no such file, nor a model config "
                "of an installed open-clip-torch (`pip install --no-deps "
                "open-clip-torch` ships them)"
            )
        path = bundled
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON model config ({e})") from e
    return config_from_open_clip(cfg)


def _count_blocks(state: Mapping[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if found != set(range(len(found))):
        raise WeightMismatchError(f"{prefix}N blocks are not numbered 0..n-1: {found}")
    return len(found)


def infer_config(
    state: Mapping[str, np.ndarray],
    *,
    quick_gelu: bool,
    vision_head_width: int = 64,
    text_head_width: int = 64,
    source: str = "state dict",
) -> CLIPConfig:
    """Reads the architecture of an ``open_clip.CLIP`` state dict off its shapes.

    Args:
      state: key -> array in open_clip's layout (see
        :func:`jaxcxai.models.clip_weights.canonical_keys`).
      quick_gelu: the activation; OpenAI-trained weights (and open_clip's
        ``-quickgelu`` configs) need True, other open_clip weights False.
      vision_head_width: channels per image-tower attention head.
      text_head_width: channels per text attention head.
      source: the file, for error messages.

    Raises:
      WeightMismatchError: a key the inference needs is missing (named), or the
        image tower is neither an open_clip ViT nor a ModifiedResNet.
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise WeightMismatchError(
                f"{source}: cannot infer the CLIP architecture, key {key!r} is missing"
            )
        return tuple(np.shape(state[key]))

    if "visual.class_embedding" in state:  # ViT
        width, _, patch, _ = shape("visual.conv1.weight")
        grid = round((shape("visual.positional_embedding")[0] - 1) ** 0.5)
        vision = VisionConfig(
            image_size=grid * patch,
            width=width,
            layers=_count_blocks(state, "visual.transformer.resblocks."),
            patch_size=patch,
            head_width=vision_head_width,
            mlp_ratio=shape("visual.transformer.resblocks.0.mlp.c_fc.weight")[0]
            / width,
        )
        embed_dim = shape("visual.proj")[1]
    elif "visual.layer1.0.conv1.weight" in state:  # ModifiedResNet
        grid = round((shape("visual.attnpool.positional_embedding")[0] - 1) ** 0.5)
        vision = VisionConfig(
            image_size=grid * 32,
            width=shape("visual.layer1.0.conv1.weight")[0],
            layers=tuple(
                _count_blocks(state, f"visual.layer{k}.") for k in range(1, 5)
            ),
            head_width=vision_head_width,
        )
        embed_dim = shape("visual.attnpool.c_proj.weight")[0]
    else:
        seen = sorted(k for k in state if k.startswith("visual."))[:5]
        raise WeightMismatchError(
            f"{source}: image tower is neither an open_clip ViT "
            "(visual.class_embedding) nor a ModifiedResNet "
            f"(visual.layer1.0.conv1.weight); visual keys start {seen}"
        )
    vocab, text_width = shape("token_embedding.weight")
    if text_width % text_head_width:
        raise ValueError(
            f"text width {text_width} is not a multiple of text_head_width "
            f"{text_head_width}"
        )
    text = TextConfig(
        context_length=shape("positional_embedding")[0],
        vocab_size=vocab,
        width=text_width,
        heads=text_width // text_head_width,
        layers=_count_blocks(state, "transformer.resblocks."),
        mlp_ratio=shape("transformer.resblocks.0.mlp.c_fc.weight")[0] / text_width,
    )
    if shape("text_projection")[1] != embed_dim:
        raise WeightMismatchError(
            f"{source}: image embedding size {embed_dim} differs from the text "
            f"projection's {shape('text_projection')[1]}"
        )
    vision.num_heads  # noqa: B018 (raises on a head width that does not divide)
    return CLIPConfig(embed_dim, vision, text, quick_gelu)
