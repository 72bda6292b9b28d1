"""Datasets: the embedded SynthAerial generator and real-format loaders.

The modules, one line each:
  synthaerial      generated aerial scenes with masks, captions and planted
                   ground truth (the default dataset of the main job)
  scenes           SynthAerial's scene classes: object counts, super-categories
  layouts          the scenes' background layouts (textures, roads, water)
  shapes           SynthAerial's object concepts: sizes, top-down shapes, colours
  textures         procedural top-down background textures
  synthaerial_captions  UCM-style captions from a scene graph
  synthaerial_plots     figure of samples: images, mask overlays, backgrounds
  tfds_builder     SynthAerial as a tfds array_record dataset (no TensorFlow)
  pipeline         deterministic, per-host, batch-sharding NumPy input pipeline
  coco, coco_rle   COCO instance annotations to concept masks
  voc              Pascal VOC segmentation PNGs
  captions         UCM / RSICD caption JSON
  duch_h5          DUCH's h5 feature files and the reference split
  duch_features    reading and checking the h5 feature arrays
  validate         `DataFormatError` and the loaders' shared checks
  coco_schema      COCO record and geometry checks
  noise            CHNR's caption-noise injection and clean subset
  classic          Fashion-MNIST IDX files and scikit-learn's bundled sets
  resample         masks and maps to activation grids (nearest, bilinear, area)
  tabular          the uncertainty-gating paper's four dataset roles from
                   scikit-learn's bundled sets; its 70/15/15 split and scaling
  uci              the paper's UCI files (Wine Quality, Dry Bean, Rice, Ecoli)
  uci_files        reading those files (text, ARFF, XLSX) with located errors
"""

from jaxcxai.data import captions as captions
from jaxcxai.data import classic as classic
from jaxcxai.data import coco as coco
from jaxcxai.data import coco_rle as coco_rle
from jaxcxai.data import coco_schema as coco_schema
from jaxcxai.data import duch_features as duch_features
from jaxcxai.data import duch_h5 as duch_h5
from jaxcxai.data import noise as noise
from jaxcxai.data import pipeline as pipeline
from jaxcxai.data import resample as resample
from jaxcxai.data import synthaerial as synthaerial
from jaxcxai.data import tabular as tabular
from jaxcxai.data import uci as uci
from jaxcxai.data import validate as validate
from jaxcxai.data import voc as voc
from jaxcxai.data.validate import DataFormatError as DataFormatError

__all__ = [
    "DataFormatError",
    "coco_schema",
    "duch_features",
    "validate",
    "captions",
    "classic",
    "coco",
    "coco_rle",
    "duch_h5",
    "noise",
    "pipeline",
    "resample",
    "synthaerial",
    "tabular",
    "uci",
    "voc",
]
