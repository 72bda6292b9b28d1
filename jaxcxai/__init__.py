"""jaxcxai: concept-based XAI and unsupervised cross-modal hashing in JAX.

The library in layers (docs/architecture.md); a module imports only from its
own layer or below, and other families only through their public names.

Layer 0, infrastructure:
  parallel        device meshes, batch sharding
  distributed     multi-host start-up (`initialize_distributed`)
  checkpoint      Orbax checkpointing (save every N, keep K, resume)
  atomic_files    atomic files (temporary name, then rename; JAX-free)
  counter_hash    counter-based random bits (MC dropout masks, LIME's draws)
  metric_writers  JSON-lines metric records, atomic JSON
  hostmem         host allocator settings for XLA:CPU (scripts call it)
  checks          non-finite input checks and fingerprints of resumed work
  plotting        the house style of every figure (labelled axes, titles)
Layer 1, models, data and pure metrics:
  models          flax.linen backbones with named activations, weight import,
                  packaged pretrained weights, MiniLM text encoder
  data            SynthAerial (the embedded default) and real-format loaders
  metrics         retrieval, segmentation and explanation metrics
Layer 2, training and shared method layers:
  training        TrainState, the `train_step(state, batch, key)` contract,
                  the loop, trained backbones (`load_trained`)
  features        sharded, cached activation extraction
  feature_steps   its jitted step, dispatch and fetch (NaN / inf checks)
  feature_cache   the on-disk feature cache (reader; feature_writers: writers)
  attribution     saliency, IG, SmoothGrad, Grad-CAM, occlusion, KernelSHAP,
                  LIME, RISE, TreeSHAP, concept attribution; the
                  explanation study (`attribution.run.explain`)
Layer 3, method families:
  concepts        probes (Net2Vec, TCAV), loce (LoCE and its analyses),
                  discovery (NMF/ICE, PCA, ICA, SAE, ...), stability (CAV
                  retrieval and attribution stability), comparison (layer x
                  layer concept similarity, CKA), background (background
                  randomisation and bias evaluation)
  hashing         DUCH / CHNR hashing and exact Hamming search
  uncertainty     epistemic estimators, perturbations, XAI-UQ correlation,
                  gating policies and the paper's experiments (`run_study`)
  adversarial     attacks (FGSM, BIM, PGD, MI-FGSM, C&W) and their concept-based
                  dissection (F1-F3)
  hierarchy       semantic hierarchies in embeddings: ontologies (WordNet), trees,
                  naming, consistency, UAES, alignment, two-tower heads, the study
"""

from jaxcxai import atomic_files as atomic_files
from jaxcxai import checkpoint as checkpoint
from jaxcxai import hostmem as hostmem
from jaxcxai import metric_writers as metric_writers
from jaxcxai import parallel as parallel
from jaxcxai import training as training

__version__ = "0.1.0"

__all__ = [
    "atomic_files",
    "checkpoint",
    "hostmem",
    "metric_writers",
    "parallel",
    "training",
    "__version__",
]
