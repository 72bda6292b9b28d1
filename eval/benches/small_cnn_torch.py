"""A PyTorch port of `jaxcxai.models.cnn.SmallCNN` (eval mode) for the
attribution benchmarks (`integrated_gradients`, `smoothgrad`).

Three conv(3x3, pad 1, no bias)-BatchNorm-ReLU-maxpool(2) stages, a global
spatial mean and a linear head, with the flax variables copied in: conv
kernels HWIO -> OIHW, the dense kernel transposed, BatchNorm's running
statistics (eps 1e-5) from `batch_stats`. Inputs are NCHW, so NHWC arrays
are transposed on the way in and attributions on the way out.
"""

import numpy as np

# The benchmarks' shared set-up.
NUM_CLASSES, WIDTHS, SIZE, NUM_IMAGES = 13, (32, 64, 128), 64, 64


def bench_model(seed: int = 0):
    """SmallCNN with random weights (no trained SynthAerial weights ship) and
    non-trivial BatchNorm statistics, so the port exercises every parameter.

    Returns:
      (model, variables) with NumPy float32 leaves.
    """
    from jaxcxai.models.cnn import SmallCNN
    from jaxcxai.models.zoo import host_init

    model = SmallCNN(num_classes=NUM_CLASSES, widths=WIDTHS)
    variables = host_init(model, (1, SIZE, SIZE, 3), seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name in ("conv1.bn", "conv2.bn", "conv3.bn"):
        p, s = variables["params"][name], variables["batch_stats"][name]
        c = p["scale"].shape[0]
        p["scale"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        p["bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        s["mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        s["var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    return model, variables


def bench_images(num: int = NUM_IMAGES) -> np.ndarray:
    """SynthAerial images scaled to [-1, 1], (num, 64, 64, 3) float32."""
    from jaxcxai.data import synthaerial

    images = synthaerial.generate(num, size=SIZE, seed=0)["image"]
    return (images.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def torch_small_cnn(torch, variables):
    """The eval-mode PyTorch module with `variables` copied in."""
    nn = torch.nn
    params, stats = variables["params"], variables["batch_stats"]
    layers, cin = [], 3
    for i, width in enumerate(WIDTHS, start=1):
        conv = nn.Conv2d(cin, width, 3, padding=1, bias=False)
        bn = nn.BatchNorm2d(width, eps=1e-5)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))
        with torch.no_grad():
            conv.weight.copy_(t(params[f"conv{i}.conv"]["kernel"]).permute(3, 2, 0, 1))
            bn.weight.copy_(t(params[f"conv{i}.bn"]["scale"]))
            bn.bias.copy_(t(params[f"conv{i}.bn"]["bias"]))
            bn.running_mean.copy_(t(stats[f"conv{i}.bn"]["mean"]))
            bn.running_var.copy_(t(stats[f"conv{i}.bn"]["var"]))
        layers += [conv, bn, nn.ReLU(), nn.MaxPool2d(2)]
        cin = width

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(cin, NUM_CLASSES)
            with torch.no_grad():
                self.fc.weight.copy_(t(params["fc"]["kernel"]).T)
                self.fc.bias.copy_(t(params["fc"]["bias"]))

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    return Net().eval()


def to_nchw(torch, x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def to_nhwc(a) -> np.ndarray:
    return np.transpose(a.detach().numpy(), (0, 2, 3, 1))


def float32_agreement(ours, theirs) -> dict:
    """Float32 agreement of two attribution arrays of the same shape."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    diff, scale = np.abs(ours - theirs), np.abs(theirs).max()
    return {
        "float32_max_rel": float(diff.max() / scale),
        "float32_rel_l2": float(np.linalg.norm(diff) / np.linalg.norm(theirs)),
        "float32_share_within_1e-4": float(np.mean(diff <= 1e-4 * scale)),
    }
