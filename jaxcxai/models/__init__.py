"""flax.linen backbones with named activations, and torch-free weight import.

Every backbone is called as
``logits, acts = model.apply(variables, images, train=False, layers=None)``
with NHWC images; ``acts`` maps layer names (torchvision module names, e.g.
``features.14`` or ``layer3``) to activations. Each module's docstring lists its
layer names and shapes.

  zoo          ``get_model(name, num_classes)``: the dict of backbones
  preprocess   module: ``preprocess.preprocess(name, images)``, PIL resizing
  torch_io     ``read_state_dict(path)``: legacy/zip .pth, .safetensors, .npz
  torch_pickle the restricted unpickler of .pth files and the tensors it rebuilds
  torch_zip    zip .pth archives, truncated ones included
  safetensors_io  a validating .safetensors reader
  weight_checks   ``WeightFileError``: views checked against their storages
  convert      ``torch_to_linen``: strict state-dict -> linen variables
  minilm       ``TextEncoder``: all-MiniLM-L6-v2 sentence embeddings (linen BERT)
  minilm_model ``MiniLM``: the linen BERT network and its poolings
  minilm_weights ``load_minilm``: offline HF weights -> linen params
  clip         ``CLIP``: OpenCLIP's model (ViT / ModifiedResNet image tower + text tower)
  clip_vision  OpenCLIP's ViT and ModifiedResNet image towers, named activations
  clip_transformer  the pre-LN transformer both CLIP towers share
  clip_config  ``read_config`` (open_clip JSON / bundled names), ``infer_config``
  clip_weights ``load_clip(path, config=None, *, quick_gelu=None)``: torch-free
               OpenCLIP import
  clip_tokenizer ``ClipTokenizer``: CLIP's BPE (vocabulary from open-clip-torch)
  pretrained   ``load_pretrained(name)`` (packaged ImageNet weights),
               ``load_weights(name, path)``, ``imagenet_class_name(i)``
"""

from jaxcxai.models.clip import CLIP as CLIP
from jaxcxai.models.clip import CLIPConfig as CLIPConfig
from jaxcxai.models.clip_tokenizer import ClipTokenizer as ClipTokenizer
from jaxcxai.models.clip_weights import load_clip as load_clip
from jaxcxai.models.cnn import SmallCNN as SmallCNN
from jaxcxai.models.convert import WeightMismatchError as WeightMismatchError
from jaxcxai.models.convert import linen_to_torch as linen_to_torch
from jaxcxai.models.convert import torch_to_linen as torch_to_linen
from jaxcxai.models.efficientnet import EfficientNetLite as EfficientNetLite
from jaxcxai.models.minilm import MiniLM as MiniLM
from jaxcxai.models.minilm import TextEncoder as TextEncoder
from jaxcxai.models.minilm import load_minilm as load_minilm
from jaxcxai.models.mobilenet import MobileNetV2 as MobileNetV2
from jaxcxai.models.pretrained import MissingWeightsError as MissingWeightsError
from jaxcxai.models.pretrained import imagenet_class_name as imagenet_class_name
from jaxcxai.models.pretrained import load_pretrained as load_pretrained
from jaxcxai.models.pretrained import load_weights as load_weights
from jaxcxai.models.resnet import ResNet as ResNet
from jaxcxai.models.torch_io import UnsafePickleError as UnsafePickleError
from jaxcxai.models.torch_io import read_state_dict as read_state_dict
from jaxcxai.models.vgg import VGG as VGG
from jaxcxai.models.vit import VisionTransformer as VisionTransformer
from jaxcxai.models.weight_checks import WeightFileError as WeightFileError
from jaxcxai.models.zoo import MODELS as MODELS
from jaxcxai.models.zoo import get_model as get_model
from jaxcxai.models.zoo import host_init as host_init

__all__ = [
    "CLIP",
    "CLIPConfig",
    "ClipTokenizer",
    "load_clip",
    "MODELS",
    "VGG",
    "EfficientNetLite",
    "MissingWeightsError",
    "MiniLM",
    "MobileNetV2",
    "TextEncoder",
    "load_minilm",
    "ResNet",
    "SmallCNN",
    "UnsafePickleError",
    "VisionTransformer",
    "WeightFileError",
    "WeightMismatchError",
    "get_model",
    "host_init",
    "imagenet_class_name",
    "linen_to_torch",
    "load_pretrained",
    "load_weights",
    "read_state_dict",
    "torch_to_linen",
]
