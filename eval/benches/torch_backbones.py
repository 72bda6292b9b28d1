"""Eager PyTorch backbones in torchvision's module layout (benchmark baselines).

torchvision cannot be imported next to this repo's CPU torch, so MobileNetV2 and
ResNet-18 are written here from their architectures with torchvision's module
names: their ``state_dict`` keys are torchvision's, so the same ``.pth`` file
loads into these and, through ``jaxcxai.models.load_weights``, into ours.

Each ``torch_*`` function returns ``predict(images) -> logits``: images are
NHWC float32 NumPy arrays (B, H, W, 3), or torch NCHW tensors already on the
device (a benchmark leaves the layout change out of its timing that way);
logits are (B, num_classes) NumPy float32.
``torch`` is imported inside the functions so that importing this module
costs nothing when the baseline is not run.
"""

import numpy as np

# MobileNetV2 inverted-residual settings: (expansion t, channels c, repeats n,
# first stride s), as in the paper's Table 2 and torchvision.
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _predictor(net, device: str):
    """Wraps an eval-mode module as ``predict(NHWC np) -> logits np``."""
    import torch

    net = net.eval().to(device)

    def predict(images) -> np.ndarray:
        if not isinstance(images, torch.Tensor):
            x = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
            images = torch.from_numpy(x).to(device)
        with torch.no_grad():
            out = net(images)
        return out.cpu().numpy()

    return predict


def mobilenet_v2_module():
    """Untrained ``torch.nn.Module``: MobileNetV2 with torchvision's names."""
    from torch import nn

    def conv_bn_relu6(cin, cout, kernel=3, stride=1, groups=1):
        pad = (kernel - 1) // 2
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False),
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
            for t, c, n, s in MOBILENET_V2_BLOCKS:
                for i in range(n):
                    features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            features.append(conv_bn_relu6(cin, 1280, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x):
            return self.classifier(self.features(x).mean(dim=(2, 3)))

    return MobileNetV2()


def torch_mobilenet_v2(path, device: str = "cpu"):
    """Eager PyTorch MobileNetV2 loaded from the state dict at ``path``.

    Args:
      path: a torchvision-layout ``.pth`` file (read by ``torch.load``).
      device: torch device string.

    Returns:
      ``predict(images (B, H, W, 3) float32) -> logits (B, 1000)``.
    """
    import torch

    net = mobilenet_v2_module()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _predictor(net, device)


def resnet18_module(num_classes: int = 1000):
    """Untrained ``torch.nn.Module``: ResNet-18 (v1.5) with torchvision's names.

    Initialised as torchvision does: Kaiming-normal (fan-out) convolutions,
    BatchNorm weight 1 and bias 0, PyTorch's default ``Linear`` init.
    """
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            residual = x if self.downsample is None else self.downsample(x)
            return self.relu(y + residual)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for stage in range(4):
                cout = 64 * 2**stage
                stride = 1 if stage == 0 else 2
                blocks = [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
                setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
                cin = cout
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(
                        m.weight, mode="fan_out", nonlinearity="relu"
                    )
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


def random_resnet18_state(seed: int) -> dict:
    """State dict of a seeded random ResNet-18 with non-trivial BatchNorm.

    Fresh BatchNorm layers (weight 1, bias 0, running mean 0, variance 1) would
    make a swapped or ignored BN tensor invisible in the logits, so their four
    tensors are drawn at random here: weight and variance in [0.5, 1.5], bias
    and mean N(0, 0.1^2).

    Args:
      seed: torch seed (``torch.manual_seed``) for the init and the BN draw.

    Returns:
      torchvision-layout ``state_dict`` (name -> CPU tensor).
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = resnet18_module()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def torch_resnet18(state: dict, device: str = "cpu"):
    """Eager PyTorch ResNet-18 with the given torchvision-layout state dict.

    Args:
      state: e.g. :func:`random_resnet18_state`, or ``torch.load`` of a file.
      device: torch device string.

    Returns:
      ``predict(images (B, H, W, 3) float32) -> logits (B, 1000)``.
    """
    net = resnet18_module(int(state["fc.bias"].shape[0]))
    net.load_state_dict(state)
    return _predictor(net, device)
