"""SynthAerial as a TFDS array_record dataset, built and read without TensorFlow.

TFDS needs TensorFlow only for ``as_dataset`` and for encoding images from arrays
(``tf.image.encode_png``), so this builder hands ``tfds.features.Image`` encoded PNG
bytes, stores masks as zlib-compressed raw ``Tensor``s, builds ``DatasetInfo``
directly and never touches the download manager. Records are written unshuffled:
record ``r`` of split ``train`` is image ``r`` of the generator stream and record
``r`` of ``test`` is image ``num_train + r``. Read back with `load`, a random-access
source (``len``, ``src[i]``, ``src.__getitems__(idx)``) returning the same dtypes and
values as `synthaerial.generate`.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxcxai.data import synthaerial as sa

_ZLIB = tfds.features.Encoding.ZLIB
# Scalars that TFDS returns as Python ints; cast back to the generator's dtypes.
_SCALARS = {
    "scene": np.int32,
    "super_category": np.int32,
    "background": np.int32,
    "num_objects": np.int32,
    "index": np.int64,
}


@dataclasses.dataclass(kw_only=True)
class SynthAerialConfig(tfds.core.BuilderConfig):
    """Generator parameters; the config name encodes all of them."""

    size: int = 128
    seed: int = 0
    num_train: int = 1000
    num_test: int = 200
    boat_on_water_p: float = 0.9
    scenes: tuple[str, ...] | None = None

    @staticmethod
    def make(**kw) -> SynthAerialConfig:
        c = SynthAerialConfig(name="tmp", **kw)
        scenes = "" if c.scenes is None else "_" + "-".join(sorted(c.scenes))
        c.name = (
            f"s{c.size}_seed{c.seed}_p{c.boat_on_water_p:g}"
            f"_n{c.num_train}-{c.num_test}{scenes}"
        )
        return c


def features(size: int) -> tfds.features.FeaturesDict:
    """TFDS feature spec of one SynthAerial example of side ``size``."""
    k, m = len(sa.CONCEPTS), sa.MAX_OBJECTS
    t = tfds.features.Tensor
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "class_mask": t(shape=(size, size), dtype=np.uint8, encoding=_ZLIB),
            "instance_mask": t(shape=(size, size), dtype=np.int32, encoding=_ZLIB),
            "background_map": t(shape=(size, size), dtype=np.uint8, encoding=_ZLIB),
            "scene": tfds.features.ClassLabel(names=sa.SCENES),
            "super_category": tfds.features.ClassLabel(names=sa.SUPER_CATEGORIES),
            "background": tfds.features.ClassLabel(names=sa.BACKGROUNDS),
            "object_counts": t(shape=(k,), dtype=np.int32),
            "objects_present": t(shape=(k,), dtype=np.bool_),
            "num_objects": t(shape=(), dtype=np.int32),
            "index": t(shape=(), dtype=np.int64),
            "captions": t(shape=(sa.CAPTIONS_PER_IMAGE,), dtype=np.str_),
            "obj_class": t(shape=(m,), dtype=np.uint8),
            "obj_subconcept": t(shape=(m,), dtype=np.int8),
            "obj_bbox": t(shape=(m, 4), dtype=np.int32),
            "obj_center": t(shape=(m, 2), dtype=np.float32),
            "obj_angle": t(shape=(m,), dtype=np.float32),
            "obj_length": t(shape=(m,), dtype=np.float32),
            "obj_width": t(shape=(m,), dtype=np.float32),
            "obj_background": t(shape=(m,), dtype=np.int8),
        }
    )


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


class SynthAerial(tfds.core.GeneratorBasedBuilder):
    """SynthAerial synthetic aerial scenes (see `jaxcxai.data.synthaerial`)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    CHUNK = 64  # images generated per `generate` call while writing

    # TFDS looks up a checksums file next to the builder's code to configure its
    # download manager; resolving that path imports `importlib_resources`, which the
    # tfds wheel does not depend on. Nothing is downloaded here, so report no code
    # path (and hence no checksums) instead of adding the dependency.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return None

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        meta = dict(
            size=c.size,
            seed=c.seed,
            num_train=c.num_train,
            num_test=c.num_test,
            boat_on_water_p=c.boat_on_water_p,
            scenes=list(c.scenes or sa.SCENES),
            concepts=list(sa.CONCEPTS),
            subconcepts={k: list(v) for k, v in sa.SUBCONCEPTS.items()},
            scene_super=[sa.SUPER_CATEGORIES[i] for i in sa.SCENE_SUPER],
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=features(c.size),
            metadata=tfds.core.MetadataDict(meta),
            disable_shuffling=True,  # record r = image r of the split's range
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # all data is generated locally; never download
        c = self.builder_config
        splits = {"train": (0, c.num_train), "test": (c.num_train, c.num_test)}
        # TFDS cannot write an empty split, so a split of size 0 is left out.
        return {k: self._generate_examples(*v) for k, v in splits.items() if v[1] > 0}

    def _generate_examples(self, start: int, num: int):
        c = self.builder_config
        for lo in range(start, start + num, self.CHUNK):
            n = min(self.CHUNK, start + num - lo)
            data = sa.generate(
                n,
                size=c.size,
                seed=c.seed,
                start=lo,
                boat_on_water_p=c.boat_on_water_p,
                scenes=c.scenes,
            )
            for j in range(n):
                ex = {key: data[key][j] for key in data}
                ex["image"] = _png(ex["image"])
                ex["captions"] = np.array([str(s) for s in ex["captions"]], object)
                yield int(ex["index"]), ex


def build(
    data_dir: str,
    num_train: int,
    num_test: int,
    size: int = 128,
    seed: int = 0,
    boat_on_water_p: float = 0.9,
    scenes: tuple[str, ...] | None = None,
) -> str:
    """Generates SynthAerial into ``data_dir`` as array_record; returns its directory.

    Already-built configurations are reused (TFDS skips them). A split with zero
    images is not written.
    """
    if num_train < 1 or num_test < 0:
        raise ValueError(
            f"need num_train >= 1 and num_test >= 0, got {num_train}, {num_test}"
        )
    config = SynthAerialConfig.make(
        size=size,
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        boat_on_water_p=boat_on_water_p,
        scenes=None if scenes is None else tuple(scenes),
    )
    builder = SynthAerial(data_dir=data_dir, config=config, file_format="array_record")
    builder.download_and_prepare()
    return os.fspath(builder.data_dir)


class SynthAerialSource:
    """Random-access view of one split returning `generate`-compatible arrays."""

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    @staticmethod
    def _fix(ex: dict) -> dict:
        out = dict(ex)
        for key, dtype in _SCALARS.items():
            out[key] = np.asarray(out[key], dtype)
        caps = [s.decode("utf-8") for s in out["captions"]]
        out["captions"] = np.array(caps, sa.CAPTION_DTYPE)
        return out

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for split of size {n}")
        return self._fix(self._source[int(i) % n])

    def __getitems__(self, indices) -> list[dict]:
        return [
            self._fix(ex) for ex in self._source.__getitems__(list(map(int, indices)))
        ]


def dataset_dirs(data_dir: str) -> list[str]:
    """All built SynthAerial version directories under ``data_dir``."""
    root = os.path.join(data_dir, SynthAerial.name)
    if not os.path.isdir(root):
        return []
    version = str(SynthAerial.VERSION)
    dirs = [os.path.join(root, c, version) for c in sorted(os.listdir(root))]
    return [d for d in dirs if os.path.isfile(os.path.join(d, "dataset_info.json"))]


def load(data_dir: str, split: str, config: str | None = None) -> SynthAerialSource:
    """Opens a built split ("train" or "test") for random access.

    Args:
        data_dir: the ``data_dir`` given to `build`, or a dataset directory it returned.
        split: split name.
        config: config name (directory under ``synth_aerial/``); needed only when
            several configurations were built into the same ``data_dir``.
    """
    if os.path.isfile(os.path.join(data_dir, "dataset_info.json")):
        path = data_dir
    else:
        dirs = dataset_dirs(data_dir)
        if config is not None:
            dirs = [d for d in dirs if os.path.basename(os.path.dirname(d)) == config]
        if len(dirs) != 1:
            names = [
                os.path.basename(os.path.dirname(d)) for d in dataset_dirs(data_dir)
            ]
            raise FileNotFoundError(
                f"expected exactly one SynthAerial dataset in {data_dir!r} "
                f"(config={config!r}); found {names}"
            )
        path = dirs[0]
    builder = tfds.builder_from_directory(path)
    if split not in builder.info.splits:
        raise KeyError(f"split {split!r} not in {list(builder.info.splits)} at {path}")
    return SynthAerialSource(builder.as_data_source(split=split))


def to_arrays(source, indices=None) -> dict[str, np.ndarray]:
    """Stacks examples of a random-access source into a dict of arrays."""
    indices = range(len(source)) if indices is None else indices
    exs = source.__getitems__(list(indices))
    return {key: np.stack([ex[key] for ex in exs]) for key in exs[0]}
