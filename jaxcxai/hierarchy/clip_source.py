"""The OpenCLIP source: an imported checkpoint's two towers as views.

A real VLM in the semantic-hierarchies study (Schwalbe et al. 2026,
arXiv:2603.26798), when the user brings OpenCLIP weights: the torch-free
import of `jaxcxai.models.clip_weights.load_clip` and the CLIP BPE
tokenizer (`jaxcxai.models.clip_tokenizer`). Views:

* "OpenCLIP image" / "OpenCLIP text": SynthAerial scenes through the image
  tower (class centroids of the training images) and the scene prompts
  through the text tower (the zero-shot classifier), against the scene
  taxonomy, as the two-tower source (`aerial`);
* "OpenCLIP text (ImageNet)": the ImageNet class names in the configured
  prompt templates through the text tower, against WordNet
  (`sources.imagenet_views` with CLIP's text encoder).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import features
from jaxcxai.data import synthaerial
from jaxcxai.hierarchy import aerial, sources
from jaxcxai.hierarchy import centroids as centroids_lib
from jaxcxai.hierarchy import ontology as onto_lib

__all__ = ["clip_encoders", "clip_views"]

_TEXT_ROWS = 64  # texts per text-tower call (one compiled shape)


def clip_encoders(settings):
    """(encode_text: texts -> (N, E), encode_images: uint8 (N, S, S, 3) ->
    (N, E), model config) of the checkpoint in `settings` (a
    `study.ClipSettings`); embeddings L2-normalised."""
    from PIL import Image

    from jaxcxai.models import clip as clip_lib
    from jaxcxai.models.clip_tokenizer import ClipTokenizer
    from jaxcxai.models.clip_weights import load_clip

    model, variables = load_clip(
        settings.checkpoint, settings.config or None,
        quick_gelu=None if settings.config else settings.quick_gelu,
    )  # fmt: skip
    cfg = model.config
    tokenize = ClipTokenizer(settings.vocab or None, cfg.text.context_length)
    text_fn = jax.jit(lambda v, ids: model.apply(v, ids, normalize_output=True,
                                                  method=model.encode_text)[0])  # fmt: skip

    def encode_text(texts) -> np.ndarray:
        ids = tokenize(list(texts))
        # Causal mask: padding after the end token changes nothing, so cut it,
        # to a multiple of 16 tokens (few compiled shapes).
        used = int((ids > 0).sum(1).max())
        ids = ids[:, : min(ids.shape[1], -(-used // 16) * 16)]
        out = []
        for s in range(0, len(ids), _TEXT_ROWS):
            chunk = ids[s : s + _TEXT_ROWS]
            pad = np.zeros((_TEXT_ROWS - len(chunk), ids.shape[1]), ids.dtype)
            pad[:, 0], pad[:, 1] = tokenize.sot_id, tokenize.eot_id
            emb = text_fn(variables, np.concatenate([chunk, pad]))
            out.append(np.asarray(emb)[: len(chunk)])
        return np.concatenate(out)

    # (1, 1, 1, 3): explicit broadcasting (jax_numpy_rank_promotion="raise").
    mean = np.asarray(clip_lib.IMAGE_MEAN, np.float32).reshape(1, 1, 1, 3)
    std = np.asarray(clip_lib.IMAGE_STD, np.float32).reshape(1, 1, 1, 3)
    side = cfg.vision.image_size

    def apply_images(x):
        x = (x.astype(jnp.float32) / 255.0 - mean) / std
        emb, _ = model.apply(
            variables, x, normalize_output=True, method=model.encode_image
        )
        return emb, {"emb": emb}

    def encode_images(images) -> np.ndarray:
        resized = np.stack([np.asarray(Image.fromarray(x).resize((side, side),
                                                               Image.BILINEAR))
                            for x in np.asarray(images)])  # fmt: skip
        out = features.extract(apply_images, resized, ["emb"],
                               batch_size=settings.batch_size, dtype=np.float32,
                               pool=False, progress=False)  # fmt: skip
        return np.asarray(out["emb"], np.float32)

    return encode_text, encode_images, cfg


def clip_views(
    settings, imagenet, test_frac: float = 0.3, *, imagenet_view: bool = True
) -> list[sources.View]:
    """The OpenCLIP views (module docstring).

    Args:
      settings: `study.ClipSettings` (checkpoint, config, quick_gelu, vocab,
        num_images, image_size, batch_size).
      imagenet: `study.ImageNetSettings` (class subset, templates, WordNet).
      test_frac: held-out SynthAerial images per class.
      imagenet_view: also the ImageNet text view (needs WordNet).
    """
    encode_text, encode_images, _ = clip_encoders(settings)
    g = synthaerial.generate(settings.num_images, size=settings.image_size, seed=0)
    labels = g["scene"].astype(np.int32)
    test = aerial.split(labels, test_frac)
    n = len(synthaerial.SCENES)
    missing = sorted(set(range(n)) - set(labels[~test].tolist()))
    if missing:
        raise ValueError(f"clip.num_images={settings.num_images} leaves scene classes "
                         f"{[synthaerial.SCENES[c] for c in missing]} without a "
                         "training image; use more images")  # fmt: skip
    z = encode_images(g["image"])
    onto, leaves = onto_lib.synthaerial_taxonomy("scenes")
    bnames, bnodes = sources.bank_names(onto)
    text = sources.ensemble(encode_text, [*aerial.scene_phrases(),
                                          *(sources.with_article(b) for b in bnames)],
                            aerial.TEMPLATES)  # fmt: skip
    classifier, bank = text[:n], text[n:]
    names = tuple(onto.names[i] for i in leaves)
    common = dict(source="clip", classes="synthaerial", class_names=names, onto=onto,
                  leaves=leaves, bank_emb=bank, bank_names=bnames, bank_onto=bnodes,
                  exclude=tuple((a, p.split(" ", 1)[1])
                                for a, p in zip(names, aerial.scene_phrases())),
                  samples=z[test], labels=labels[test], train_samples=z[~test],
                  train_labels=labels[~test], classifier=classifier)  # fmt: skip
    image_cent = np.asarray(centroids_lib.class_centroids(z[~test], labels[~test], n))
    views = [
        sources.View(name="OpenCLIP image", modality="image", centroids=image_cent,
                     bank_kind="shared", **common),
        sources.View(name="OpenCLIP text", modality="text", centroids=classifier,
                     bank_kind="same", **common),
    ]  # fmt: skip
    if imagenet_view:
        (text_view,) = sources.imagenet_views(
            num_classes=imagenet.num_classes, templates=imagenet.templates,
            classifiers=(), wordnet_dir=imagenet.wordnet_dir, encode=encode_text)  # fmt: skip
        views.append(dataclasses.replace(text_view, name="OpenCLIP text (ImageNet)",
                                         source="clip"))  # fmt: skip
    return views
