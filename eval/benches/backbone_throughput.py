"""Backbone throughput at 224x224: forward and forward + input-gradient images/s.

Ours: each jitted linen backbone (random init; pretrained for MobileNetV2).
Baseline: an eager PyTorch MobileNetV2 written here in the torchvision layout
(as ``jaxcxai.models.mobilenet`` describes it; torchvision cannot be imported
next to CPU torch), loaded with the same packaged weights through
``torch.load``; outputs must agree to 1e-4. Without torch the baseline is "none"
and ``agreement_ok`` is the golden check alone (chelsea -> Egyptian cat 0.74,
coffee -> espresso 0.99, within 0.02).

    python -m eval.bench backbone_throughput --quick
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.models import pretrained, zoo
from jaxcxai.models.preprocess import preprocess, resize

_QUICK = ("mobilenet_v2", "efficientnet_lite0", "resnet18")
_FULL = (
    "small_cnn",
    "mobilenet_v2",
    "efficientnet_lite0",
    "resnet18",
    "resnet50",
    "vgg16",
    "vit_small",
)
_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def torch_mobilenet_v2(path, device: str = "cpu"):
    """Eager PyTorch MobileNetV2 with torchvision's module names, loaded from
    ``path`` by ``torch.load``. Returns ``f(images NHWC float32 np) -> logits np``."""
    import torch
    from torch import nn

    def conv_bn_relu6(cin, cout, kernel=3, stride=1, groups=1):
        return nn.Sequential(
            nn.Conv2d(
                cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expansion):
            super().__init__()
            hidden = cin * expansion
            layers = [conv_bn_relu6(cin, hidden, 1)] if expansion != 1 else []
            layers += [
                conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                nn.Conv2d(hidden, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            ]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            features, cin = [conv_bn_relu6(3, 32, 3, 2)], 32
            for t, c, n, s in _BLOCKS:
                for i in range(n):
                    features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            features.append(conv_bn_relu6(cin, 1280, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x):
            return self.classifier(self.features(x).mean(dim=(2, 3)))

    net = MobileNetV2()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net = net.eval().to(device)

    def predict(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(
            device
        )
        with torch.no_grad():
            out = net(x)
        return out.cpu().numpy()

    return predict


def _best_of(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # Warm-up (compiles on the first call).
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _throughput(name, batch, repeats, seed):
    model = zoo.get_model(name, 1000)
    images = jax.random.normal(jax.random.key(seed), (batch, 224, 224, 3), jnp.float32)
    variables = zoo.host_init(model, (1, 224, 224, 3), seed)
    forward = jax.jit(lambda v, x: model.apply(v, x, layers=())[0])
    # Saliency-style gradient of the top logit with respect to the input.
    input_grad = jax.jit(jax.grad(lambda x, v: forward(v, x).max(axis=-1).sum()))
    fwd_s = _best_of(lambda: forward(variables, images), repeats)
    grad_s = _best_of(lambda: input_grad(images, variables), repeats)
    return {"forward_img_s": batch / fwd_s, "input_grad_img_s": batch / grad_s}


def run(quick: bool) -> dict:
    on_cpu = jax.devices()[0].platform == "cpu"
    batch = 4 if quick else (8 if on_cpu else 64)
    repeats = 3 if quick else 5
    names = _QUICK if quick else _FULL
    throughput = {
        n: _throughput(n, batch, repeats, seed) for seed, n in enumerate(names)
    }

    # MobileNetV2 with the packaged weights on the two golden photos (tiled).
    import skimage.data

    model, variables = pretrained.load_pretrained("mobilenet_v2")
    photos = np.stack(
        [resize(skimage.data.chelsea(), 224), resize(skimage.data.coffee(), 224)]
    )
    images = np.asarray(
        preprocess("mobilenet_v2", np.resize(photos, (batch, 224, 224, 3)))
    )
    forward = jax.jit(lambda v, x: model.apply(v, x, layers=())[0])
    ours_s = _best_of(lambda: forward(variables, images), repeats)
    with jax.default_matmul_precision("highest"):  # no TF32 for the comparison
        ours = np.asarray(
            jax.jit(lambda v, x: model.apply(v, x, layers=())[0])(variables, images)
        )
    probs = np.asarray(jax.nn.softmax(ours[:2]))
    golden = [(285, 0.74), (967, 0.99)]
    golden_ok = all(
        int(p.argmax()) == label and abs(p.max() - prob) < 0.02
        for p, (label, prob) in zip(probs, golden, strict=True)
    )
    agreement = {
        "golden_ok": golden_ok,
        "top1_probs": [round(float(p.max()), 4) for p in probs],
    }

    try:
        import torch
    except ImportError:
        baseline, baseline_s, ok = "none", None, golden_ok
    else:
        device = "cuda" if not on_cpu and torch.cuda.is_available() else "cpu"
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        theirs_fn = torch_mobilenet_v2(pretrained.weight_file("mobilenet_v2"), device)
        theirs = theirs_fn(images)
        baseline_s = _best_of(lambda: theirs_fn(images), repeats)
        diff = float(np.abs(ours - theirs).max())
        agreement["max_abs_logit_diff_vs_torch"] = diff
        baseline = (
            f"eager PyTorch {torch.__version__} MobileNetV2 ({device}), same weights"
        )
        ok = golden_ok and diff < 1e-4
    return {
        "ours_s": ours_s,
        "baseline": baseline,
        "baseline_s": baseline_s,
        "agreement": agreement,
        "agreement_ok": ok,
        "params": {
            "batch": batch,
            "image_size": 224,
            "repeats": repeats,
            "backbones": list(names),
        },
        "extra": {"images_per_s": throughput},
    }
