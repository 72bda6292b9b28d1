"""Workers for `test_features`: feature extraction and text encoding over hosts.

Each worker runs unchanged in every layout (1 process x 8 devices, 2
processes x 4 devices) through `harness.run_jobs`: it calls the library
entry point (`features.extract`, `minilm.TextEncoder.encode`) exactly as a
user's script would on every host, and returns what that host got back plus
a log of the image rows it read, so the test can compare layouts and check
that each host read only its share.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import features
from jaxcxai.models.cnn import SmallCNN

# 68 images in global batches of 16: the last batch (4 rows) is padded to 8,
# so with two hosts the second host's whole share of it is padding. Chunks of
# 16 give five chunks, written alternately by the hosts.
NUM_IMAGES, IMAGE, BATCH, CHUNK = 68, 32, 16, 16
LAYERS = ("conv1", "conv2", "logits")
WIDTHS, NUM_CLASSES = (4, 8), 5


class Interrupted(RuntimeError):
    """Raised by `LoggedImages` to stop an extraction part-way."""


def images(seed: int) -> np.ndarray:
    """(NUM_IMAGES, IMAGE, IMAGE, 3) float32, the same on every host."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(NUM_IMAGES, IMAGE, IMAGE, 3)).astype(np.float32)


def backbone(seed: int):
    """`images -> (logits, {layer: act})` of a randomly initialised SmallCNN
    (two conv stages, BatchNorm in inference mode).

    The variables are drawn with NumPy into the shapes of `model.init`
    (`eval_shape`: nothing compiled). Compiling flax's init with its
    threefry draws takes seconds on a loaded CPU, in every process.
    Kernels ~ N(0, 1 / fan_in); BatchNorm scales, biases, means and
    variances away from their identity values, so BatchNorm matters.
    """
    model = SmallCNN(num_classes=NUM_CLASSES, widths=WIDTHS)
    dummy = jax.ShapeDtypeStruct((1, IMAGE, IMAGE, 3), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), dummy)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        x = rng.normal(size=leaf.shape)
        if name.endswith("kernel"):
            x /= np.sqrt(np.prod(leaf.shape[:-1]))
        elif name.endswith(("scale", "var")):
            x = 1.0 + 0.2 * np.abs(x)
        else:  # biases and BatchNorm means
            x *= 0.1
        return x.astype(leaf.dtype)

    variables = jax.tree_util.tree_map_with_path(draw, shapes)
    return lambda x: model.apply(variables, x)


class LoggedImages:
    """An array-like over images that logs every row range read.

    Reading past row `stop_at` raises `Interrupted` (a killed run, at the
    same global batch on every host); converting the whole array (what a
    host that read everything would do) raises too.
    """

    def __init__(self, data: np.ndarray, stop_at: int | None = None):
        self.data, self.stop_at, self.reads = data, stop_at, []
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError(f"expected a slice of rows, got {index!r}")
        lo, hi, step = index.indices(len(self.data))
        if step != 1:
            raise TypeError("expected a contiguous slice of rows")
        if self.stop_at is not None and hi > self.stop_at:
            raise Interrupted(f"simulated interruption reading rows {lo}..{hi}")
        self.reads.append((lo, hi))
        return self.data[lo:hi]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole image array was read")

    def log(self) -> np.ndarray:
        """(reads, 2) int64 [start, stop) row ranges, in read order."""
        return np.asarray(self.reads, np.int64).reshape(-1, 2)


def extract_features(args: dict) -> dict[str, np.ndarray]:
    """`features.extract` into memory, float32 activations and pooled.

    Runs twice: over the images as an array-like (each host slices only its
    rows), and over an iterable of 12-image batches (every host reads the
    stream, re-cut into global batches of 16, and keeps its slice).

    Args:
      args: `seed`; optional `perturb` (added to the images of process 1's
        reads, to see the equality test fail).

    Returns:
      Every entry (`conv1`, `conv1/pooled`, ...) as returned on this host,
      the same from the iterable as `streamed/conv1`, ..., and `reads`, the
      row ranges this host read from the array-like.
    """
    data = images(args["seed"])
    if args.get("perturb") and jax.process_index() == 1:
        data = data + np.float32(args["perturb"])
    apply_fn = backbone(args["seed"])
    kw = dict(batch_size=BATCH, dtype=np.float32, progress=False)
    logged = LoggedImages(data)
    out = features.extract(apply_fn, logged, LAYERS, **kw)
    stream = (data[i : i + 12] for i in range(0, NUM_IMAGES, 12))
    streamed = features.extract(apply_fn, stream, LAYERS, **kw)
    out |= {f"streamed/{name}": a for name, a in streamed.items()}
    return {**out, "reads": logged.log()}


def write_cache(args: dict) -> dict[str, np.ndarray]:
    """`features.extract` into a cache (float16 activations), maybe resumed.

    Args:
      args: `seed`, `cache_dir` (shared by every host); optional `stop_at`
        (interrupt when a read reaches that row) and `poison_before` (rows
        before it are negated: a resume that recomputed them would store
        other features than a fresh cache).

    Returns:
      `reads`; `interrupted` (1 if stopped by `stop_at`); `num_chunks` of
      the cache this host got back.
    """
    data = images(args["seed"])
    if args.get("poison_before"):
        # Not NaN: ReLU and max-pooling can drop NaNs, leaving no trace.
        data[: args["poison_before"]] *= -1
    logged = LoggedImages(data, args.get("stop_at"))
    try:
        cache = features.extract(
            backbone(args["seed"]), logged, LAYERS, batch_size=BATCH,
            chunk_size=CHUNK, cache_dir=args["cache_dir"],
            fingerprint={"seed": args["seed"]}, progress=False,
        )  # fmt: skip
    except Interrupted:
        return {"reads": logged.log(), "interrupted": np.int64(1)}
    return {
        "reads": logged.log(),
        "interrupted": np.int64(0),
        "num_chunks": np.int64(cache.num_chunks),
    }


def encode_text(args: dict) -> dict[str, np.ndarray]:
    """`TextEncoder.encode` over the global mesh, and an unsharded reference.

    Args:
      args: `sentences`, `batch_size`, `length` (the padded length: every
        sentence fits it).

    Returns:
      `emb` (N, 384) as returned on this host; `ref`, the linen model applied
      to all sentences at once on one local device (no mesh, no buckets).
    """
    from jaxcxai.models import minilm

    # One bucket: one compilation of the 6-layer model per layout.
    length = args["length"]
    encoder = minilm.TextEncoder(batch_size=args["batch_size"], buckets=(length,))
    emb = encoder.encode(args["sentences"])
    ids, mask = encoder.tokenize(args["sentences"], length)
    # Loaded again: the encoder's copy is a global (cross-host) array.
    model, params = minilm.load_minilm(minilm.model_dir(), "mean")
    params = jax.device_put(params, jax.local_devices()[0])
    ref = jax.jit(model.apply)({"params": params}, ids, mask)[0]
    return {"emb": emb, "ref": np.asarray(ref)}
