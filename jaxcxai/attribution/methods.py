"""The image explainers of an explanation study, one map per image.

`image_model(net, params)` is the backbone as an explainer sees it:
`f(x) -> (logits, {layer: act})` on float images in [0, 1] (the backbone's
own normalisation inside), with its parameters swappable for the
randomisation check. `explain_images(name, f, x, target, key, settings)`
runs one method of `METHODS` with the study's settings and returns (N, H, W)
maps; `method_program` compiles it once with the parameters, the key and
the images as arguments, so the second key of the stability check and every
step of the randomisation check reuse one program (the explainers compile
one program per model function, which a closure over new parameters would
make one per step). The scalar explained is the target's presence logit, or its
probability sigmoid(logit) for RISE and LIME (below); never a softmax: the
presence outputs of SynthAerial's backbone are independent sigmoids.

From attributions of the input's shape to one map per image
(`REDUCTION`, a choice of ours, swappable):
- saliency and SmoothGrad: the maximum of |gradient| over the colour
  channels, as Simonyan et al. (2014) draw saliency maps (SmoothGrad
  averages the raw gradients first, Smilkov et al. 2017);
- gradient x input and Integrated Gradients: the signed sum over channels,
  so a pixel's value is its share of the completeness sum;
- occlusion: the channel-constant drop of the logit.
Grad-CAM/Grad-CAM++ maps are upsampled bilinearly to the image; RISE and
LIME return pixel maps and explain the presence probability sigmoid(logit)
instead of the logit (`probability_model`), as their papers (and the lime
package) explain class probabilities: RISE's map is a mask-weighted mean of
the score, which a logit's sign and offset would swamp. `"random"`
(uniform noise from the key) is the control every score is compared with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution import cam, gradient, integrated, smooth
from jaxcxai.attribution.lime_image import lime_image, segment_images
from jaxcxai.attribution.occlusion import occlusion
from jaxcxai.attribution.rise import rise
from jaxcxai.attribution.study import ImageMethods
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "CONTROL",
    "METHODS",
    "REDUCTION",
    "SAMPLED",
    "explain_images",
    "image_model",
    "method_program",
    "probability_model",
    "segments_for",
]

METHODS = (
    "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
    "grad_cam", "grad_cam_plus_plus", "occlusion", "rise", "lime",
)  # fmt: skip
SAMPLED = ("smoothgrad", "rise", "lime")  # their maps depend on the key
CONTROL = "random"
REDUCTION = {
    "saliency": "abs_max",
    "smoothgrad": "abs_max",
    "gradient_x_input": "sum",
    "integrated_gradients": "sum",
}


def image_model(net: TrainedBackbone, params: Any = None) -> Callable:
    """`f(x) -> (logits, acts)` of float (N, H, W, 3) images in [0, 1].

    Args:
      net: the trained backbone.
      params: replacement `variables["params"]` (the batch statistics stay:
        randomising them could make a variance negative).
    """
    variables = dict(net.variables)
    if params is not None:
        variables["params"] = params
    model, prep = net.model, net.preprocess

    def f(x):
        return model.apply(variables, prep(x), train=False)

    return f


@functools.lru_cache(maxsize=16)
def probability_model(f: Callable) -> Callable:
    """`g(x) -> (sigmoid(logits), acts)` of `f`; the same `g` for the same `f`
    (so the explainers' compiled programs are reused)."""

    def g(x):
        logits, acts = f(x)
        return jax.nn.sigmoid(logits), acts

    return g


def segments_for(images: np.ndarray, s: ImageMethods) -> np.ndarray:
    """SLIC superpixels of uint8 images for LIME, (N, H, W) int32."""
    return segment_images(
        images, "slic", n_segments=s.lime_segments, compactness=s.lime_compactness,
        start_label=0,
    )  # fmt: skip


def _reduce(name: str, a: jax.Array) -> jax.Array:
    how = REDUCTION.get(name)
    return a if how is None else gradient.reduce_channels(a, how)


def explain_images(
    name: str,
    f: Callable,
    x: Any,
    target: Any,
    key: jax.Array,
    s: ImageMethods,
    *,
    segments: np.ndarray | None = None,
    mesh=None,
    as_numpy: bool = True,
) -> np.ndarray:
    """(N, H, W) float32 maps of one method.

    Args:
      name: one of `METHODS` or `CONTROL`.
      f: `image_model(...)`.
      x: (N, H, W, 3) float32 images in [0, 1].
      target: (N,) int output indices.
      key: PRNG key (used by `SAMPLED` methods and the control).
      s: the method settings.
      segments: (N, H, W) superpixels (`segments_for`), needed by "lime".
      mesh: optional mesh; images are split over its `data` axis.

    Raises:
      ValueError: an unknown method name, or "lime" without segments.
    """
    x = jnp.asarray(x, jnp.float32)
    n, h, w = x.shape[:3]
    t = np.asarray(target, np.int32)  # concrete: checked on the host
    if name == "saliency":
        a = gradient.saliency(f, x, t, mesh=mesh)
    elif name == "gradient_x_input":
        a = gradient.gradient_x_input(f, x, t, mesh=mesh)
    elif name == "integrated_gradients":
        a = integrated.integrated_gradients(
            f, x, t, steps=s.ig_steps, method=s.ig_method, mesh=mesh
        )
    elif name == "smoothgrad":
        a = smooth.smoothgrad(
            f, x, t, key=key, n=s.smooth_n, sigma=s.smooth_sigma, mesh=mesh
        )
    elif name in ("grad_cam", "grad_cam_plus_plus"):
        fn = cam.grad_cam if name == "grad_cam" else cam.grad_cam_plus_plus
        a = fn(f, x, s.layer, t, size=(h, w), mesh=mesh)
    elif name == "occlusion":
        win = (s.occlusion_window, s.occlusion_window)
        a = occlusion(
            f, x, t, window=win, stride=s.occlusion_stride,
            baseline=s.occlusion_baseline, mesh=mesh,
        )[..., 0]  # fmt: skip
    elif name == "rise":
        a = rise(
            probability_model(f), x, t, key=key, num_masks=s.rise_masks,
            grid_size=s.rise_grid, p=s.rise_p, mesh=mesh,
        )  # fmt: skip
    elif name == "lime":
        if segments is None:
            raise ValueError("lime needs segments (see segments_for)")
        a = lime_image(
            probability_model(f),
            x,
            segments,
            t,
            key=key,
            num_samples=s.lime_samples,
            mesh=mesh,
        )
    elif name == CONTROL:
        a = jax.random.uniform(key, (n, h, w))
    else:
        raise ValueError(f"unknown method {name!r}; valid: {METHODS + (CONTROL,)}")
    a = _reduce(name, a).astype(jnp.float32)
    return np.asarray(a) if as_numpy else a


def method_program(
    name: str,
    net: TrainedBackbone,
    target: Any,
    s: ImageMethods,
    *,
    segments: np.ndarray | None = None,
    mesh=None,
) -> Callable[[Any, jax.Array, Any], jax.Array]:
    """`program(params, key, x) -> (N, H, W)` maps of one method, jitted.

    Args:
      name, target, s, segments, mesh: as in `explain_images` (fixed).
      net: the backbone; `params` replaces its `variables["params"]`.
    """
    target = np.asarray(target, np.int32)

    def program(params, key, x):
        f = image_model(net, params)
        return explain_images(name, f, x, target, key, s, segments=segments,
                              mesh=mesh, as_numpy=False)  # fmt: skip

    return jax.jit(program)
