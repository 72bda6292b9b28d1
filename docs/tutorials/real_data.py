# %% [markdown]
# # Real data and pretrained weights
#
# The methods of this library run on the embedded SynthAerial data by default,
# but every study also reads real datasets from your own paths, in their
# original formats: COCO instance annotations and Pascal VOC segmentation PNGs
# (concept masks for the probes of Net2Vec, arXiv:1801.03454, and LoCE,
# arXiv:2311.14435), the UCM / RSICD caption JSON and the DUCH HDF5 feature
# files (cross-modal hashing, DUCH arXiv:2201.08125, CHNR arXiv:2202.13117),
# and Fashion-MNIST IDX files. Backbones load packaged ImageNet weights or
# torchvision-layout weight files, without torch.
#
# In this tutorial you will write tiny files in each real format to a temporary
# directory, load them with the library, look at what comes back, classify a
# photo with the packaged MobileNetV2 weights, import a weight file, and see
# the error a malformed file gets.

# %%
import gzip
import json
import os
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from jaxcxai.data import DataFormatError, captions, classic, coco, duch_h5, voc
from jaxcxai.models import (
    WeightFileError,
    get_model,
    host_init,
    imagenet_class_name,
    linen_to_torch,
    load_pretrained,
    load_weights,
)
from jaxcxai.models.preprocess import preprocess, resize

TINY = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "default") == "tiny"
# Tiny mode classifies one photo; the default size both sample photos.
NUM_PHOTOS = 1 if TINY else 2
root = tempfile.mkdtemp(prefix="jaxcxai_real_data_")
print("fixtures in", root)

# %% [markdown]
# ## 1. COCO instance annotations
#
# `coco.load_coco` reads an `instances_*.json` file and checks every record.
# `coco.category_masks` turns the annotations of one image into one boolean
# mask per category: polygons, uncompressed RLE and compressed RLE strings
# alike. We write one 6 x 8 image with a polygon "person" and an RLE "dog".

# %%
h, w = 6, 8
dog = np.zeros((h, w), bool)
dog[4:6, 5:8] = True
# Uncompressed COCO RLE: alternating run lengths of 0s and 1s, column-major.
flat = dog.flatten(order="F").astype(int)
change = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
counts = np.diff(np.r_[0, change]).tolist()
instances = {
    "images": [{"id": 7, "file_name": "000007.jpg", "height": h, "width": w}],
    "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 7,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [0, 0, 4, 4],
            "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]],
        },
        {
            "id": 2,
            "image_id": 7,
            "category_id": 18,
            "iscrowd": 0,
            "bbox": [5, 4, 3, 2],
            "segmentation": {"size": [h, w], "counts": counts},
        },
    ],
}
coco_path = os.path.join(root, "instances_tiny.json")
with open(coco_path, "w") as f:
    json.dump(instances, f)

ann = coco.load_coco(coco_path)
person_id, dog_id = coco.category_ids(ann, ["person", "dog"])
masks = coco.category_masks(ann, 7)
print(
    "categories:", person_id, dog_id, "masks:", {k: v.shape for k, v in masks.items()}
)
print("person mask:\n", masks[person_id].astype(int))
assert np.array_equal(masks[dog_id], dog)
assert masks[person_id][:4, :4].all() and masks[person_id].sum() == 16
assert coco.images_with_category(ann, dog_id) == [7]

# %% [markdown]
# ## 2. Pascal VOC segmentation PNGs
#
# VOC stores class masks as palette ("P" mode) PNGs: the pixel value is the
# class index (`voc.VOC_CLASSES`), 255 marks the void border. We write one with
# `voc.write_class_mask` and read it back as binary masks per class.

# %%
voc_root = os.path.join(root, "VOC2012")
os.makedirs(os.path.join(voc_root, "SegmentationClass"))
os.makedirs(os.path.join(voc_root, "ImageSets", "Segmentation"))
label_map = np.zeros((9, 11), np.uint8)
label_map[2:7, 1:5] = voc.VOC_CLASSES.index("dog")
label_map[1:8, 6:10] = voc.VOC_CLASSES.index("person")
label_map[0, :] = 255  # void
png = os.path.join(voc_root, "SegmentationClass", "2007_000032.png")
voc.write_class_mask(png, label_map)
with open(os.path.join(voc_root, "ImageSets", "Segmentation", "val.txt"), "w") as f:
    f.write("2007_000032\n")

ids = voc.read_split_ids(voc_root, "val")
read = voc.read_class_mask(png)
class_masks, void = voc.class_binary_masks(read, ["dog", "person"])
print("split ids:", ids, "PNG mode:", Image.open(png).mode)
print("pixels per class: dog", class_masks[0].sum(), "person", class_masks[1].sum())
print("void pixels:", void.sum())
assert np.array_equal(read, label_map)
assert class_masks[0].sum() == 20 and class_masks[1].sum() == 28

# %% [markdown]
# ## 3. UCM / RSICD caption JSON and DUCH feature files
#
# The hashing methods read the caption JSON of UCM or RSICD (image file names,
# classes, splits and several captions per image) and the DUCH reference's
# HDF5 feature files: `image_emb` rows per image and `caption_emb` rows per
# caption, in JSON order. `duch_h5.feature_paths` names the four files the
# reference code writes.

# %%
classes = ["beach", "forest"]
per_image = 2
images = []
for i in range(10):
    c = i % 2
    images.append(
        {
            "imgid": i,
            "filename": f"{i + 1}.tif",
            "classcode": c,
            "classname": classes[c],
            "split": "test" if i >= 8 else "train",
            "sentids": [per_image * i + k for k in range(per_image)],
            "sentences": [
                {
                    "imgid": i,
                    "sentid": per_image * i + k,
                    "raw": f"There is a {classes[c]} here , view {k} .",
                }
                for k in range(per_image)
            ],
        }
    )
caption_json = {
    "dataset": "TINY",
    "num_classes": 2,
    "classes": {str(i): name for i, name in enumerate(classes)},
    "images": images,
}
json_path = os.path.join(root, "dataset_TINY.json")
with open(json_path, "w") as f:
    json.dump(caption_json, f)

ds = captions.load_caption_json(json_path)
print(ds.name, ds.num_images, "images,", ds.captions_per_image, "captions each")
print("classes:", ds.class_names, "labels:", ds.labels)
print("test images:", ds.split_indices("test"))
print("first caption:", repr(ds.flat_captions()[0]))
print("cleaned as the reference:", repr(captions.clean_caption(ds.flat_captions()[0])))
assert ds.labels.tolist() == [0, 1] * 5

# %%
rng = np.random.default_rng(0)
paths = duch_h5.feature_paths(root, "TINY")
n, k = ds.num_images, ds.captions_per_image
for name, shape, key in [
    ("image", (n, 16), duch_h5.IMAGE_KEY),
    ("image_aug", (n, 16), duch_h5.IMAGE_KEY),
    ("caption", (n * k, 12), duch_h5.CAPTION_KEY),
    ("caption_aug", (n * k, 12), duch_h5.CAPTION_KEY),
]:
    duch_h5.write_h5_array(paths[name], key, rng.normal(2.0, 3.0, shape))
    print(f"{name:12s} {os.path.basename(paths[name])}")

feats = duch_h5.load_duch_features(paths, ds.labels, captions_per_image=k)
print("images", feats.images.shape, "captions", feats.captions.shape)
print(f"standardised: mean {feats.images.mean():.2e}, std {feats.images.std():.3f}")
assert feats.captions_per_image == k
assert abs(float(feats.images.std()) - 1.0) < 1e-5

# %% [markdown]
# The reference split and caption choice are reproduced exactly:
# `duch_h5.split_indexes` replays the reference code's seeded 50/10/40 draw
# with Python's `random`. `jaxcxai.hashing.data.h5_features(dir, json_path,
# "UCM")` puts the JSON and the four files together for the trainer
# (`--config.data.h5_path=DIR --config.data.json_path=FILE`).

# %%
split = duch_h5.split_indexes(ds.num_images)
print("train", split.train, "query", split.query, "db", split.db)
assert len(split.train) == ds.num_images // 2

# %% [markdown]
# ## 4. Fashion-MNIST IDX files
#
# `classic.load_fashion_mnist(split, root)` reads the four gzipped IDX files
# under their original names (`train-images-idx3-ubyte.gz`, ...). We write a
# four-image version with `classic.write_idx`.

# %%
fm_root = os.path.join(root, "fashion-mnist")
os.makedirs(fm_root)
yy, xx = np.mgrid[0:28, 0:28]
fm_images = np.stack(
    [((xx // (4 + i) + yy // (4 + i)) % 2 * 255).astype(np.uint8) for i in range(4)]
)
fm_labels = np.array([0, 3, 7, 9], np.uint8)
classic.write_idx(os.path.join(fm_root, "t10k-images-idx3-ubyte.gz"), fm_images)
classic.write_idx(os.path.join(fm_root, "t10k-labels-idx1-ubyte.gz"), fm_labels)
x, y = classic.load_fashion_mnist("test", root=fm_root)
print("images", x.shape, x.dtype, "range", x.min(), x.max(), "labels", y)
assert x.shape == (4, 28, 28, 1) and np.array_equal(y, fm_labels)

# %%
fig, axes = plt.subplots(1, 4, figsize=(8, 2.4))
for ax, image, label in zip(axes, x[..., 0], y):
    ax.imshow(image, cmap="gray")
    ax.set_title(f"label {label}")
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
fig.suptitle("Fashion-MNIST IDX fixture, read back by load_fashion_mnist")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Classifying a photo with the packaged MobileNetV2
#
# `load_pretrained("mobilenet_v2")` reads the ImageNet weights shipped in a pip
# package (a legacy `.pth` file, read without torch), converts them to linen
# variables and caches them as `.npz` under `$JAXCXAI_CACHE` (default
# `~/.cache/jaxcxai`). The expected input is `preprocess(name, resize(image,
# 224))`. The photos are scikit-learn's two bundled sample images.

# %%
photos, _ = classic.load_sklearn_images("sample_images")
photos = (photos[:NUM_PHOTOS] * 255).round().astype(np.uint8)
model, variables = load_pretrained("mobilenet_v2")
batch = preprocess("mobilenet_v2", np.stack([resize(p, 224) for p in photos]))
logits, _ = jax.jit(lambda v, im: model.apply(v, im, train=False, layers=()))(
    variables, batch
)
probs = np.asarray(jax.nn.softmax(logits))
top = np.argsort(probs, axis=1)[:, ::-1][:, :5]
for i, row in enumerate(top):
    names = [f"{imagenet_class_name(j)} ({probs[i, j]:.3f})" for j in row[:3]]
    print(f"photo {i}: " + "; ".join(names))
assert logits.shape == (NUM_PHOTOS, 1000)
# china.jpg shows a Chinese temple; the top class is a building.
assert imagenet_class_name(top[0, 0]) in ("monastery", "palace", "castle")
assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)

# %% [markdown]
# The temple in china.jpg comes out as monastery, palace and castle. In the
# default size the second photo, flower.jpg (a close-up of a flower), comes
# out as honeycomb: the top-1 of a 1000-class ImageNet model is a label from
# its list, not a description of the photo.

# %%
fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(10, 3.5))
ax_img.imshow(photos[0])
ax_img.set_title("input photo (china.jpg)")
ax_img.set_xlabel("x (pixel)")
ax_img.set_ylabel("y (pixel)")
ax_bar.barh(
    [imagenet_class_name(j).split(",")[0] for j in top[0]][::-1],
    probs[0, top[0]][::-1],
)
ax_bar.set_xlabel("softmax probability")
ax_bar.set_ylabel("ImageNet class")
ax_bar.set_title("top-5 classes, MobileNetV2 (packaged ImageNet weights)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Importing a weight file
#
# `load_weights(name, path)` loads a torchvision-layout state dict (`.pth`,
# `.safetensors` or `.npz`) into the backbone `name`, strictly: every tensor
# must fit. Here we write the state dict of a small CNN to `.npz` with
# `linen_to_torch` (the torch layout: OIHW kernels, `weight`/`bias` names) and
# import it back.

# %%
small = get_model("small_cnn", 10)
small_vars = host_init(small, (1, 32, 32, 3), seed=0)
state_dict = linen_to_torch(small_vars)
print("torch-layout keys:", list(state_dict)[:4], "...")
npz_path = os.path.join(root, "small_cnn.npz")
np.savez(npz_path, **state_dict)
_, imported = load_weights("small_cnn", npz_path)
same = jax.tree.all(
    jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), small_vars, imported)
)
print("imported variables equal the written ones:", same)
assert same

# %% [markdown]
# ## 7. Malformed files get a clear error
#
# Every loader checks its input and raises an error that names the file and
# says what is wrong: `DataFormatError` for data files (a `ValueError`) and
# `WeightFileError` for weight files. Three examples: a COCO annotation
# without its `category_id`, a caption feature file with the wrong number of
# rows, and a truncated weight file.

# %%
broken = json.loads(json.dumps(instances))
del broken["annotations"][1]["category_id"]
bad_coco = os.path.join(root, "instances_broken.json")
with open(bad_coco, "w") as f:
    json.dump(broken, f)
errors = []
try:
    coco.load_coco(bad_coco)
except DataFormatError as e:
    errors.append(e)

bad_paths = dict(paths, caption=os.path.join(root, "caption_rows_missing.h5"))
duch_h5.write_h5_array(bad_paths["caption"], duch_h5.CAPTION_KEY, np.ones((5, 12)))
try:
    duch_h5.load_duch_features(bad_paths, ds.labels, captions_per_image=k)
except DataFormatError as e:
    errors.append(e)

with open(npz_path, "rb") as f:
    head = f.read(300)
cut_path = os.path.join(root, "small_cnn_truncated.npz")
with open(cut_path, "wb") as f:
    f.write(head)
try:
    load_weights("small_cnn", cut_path)
except WeightFileError as e:
    errors.append(e)

for e in errors:
    print(f"{type(e).__name__}: {e}\n")
assert len(errors) == 3
assert errors[0].path == bad_coco and "category_id" in str(errors[0])
assert "caption_rows_missing.h5" in str(errors[1])
assert "small_cnn_truncated.npz" in str(errors[2])

# %% [markdown]
# The studies take the same paths on the command line, e.g.
# `python -m train.hashing --config configs/duch.py:ucm --workdir DIR
# --config.data.h5_path=FEATURES_DIR --config.data.json_path=dataset_UCM.json`.
# A gzip file cut short is reported the same way:

# %%
with gzip.open(os.path.join(fm_root, "t10k-images-idx3-ubyte.gz"), "rb") as f:
    raw = f.read()
with gzip.open(os.path.join(fm_root, "t10k-images-idx3-ubyte.gz"), "wb") as f:
    f.write(raw[:500])
try:
    classic.load_fashion_mnist("test", root=fm_root)
except ValueError as e:
    print(f"{type(e).__name__}: {e}")
    assert "t10k-images-idx3-ubyte.gz" in str(e)
