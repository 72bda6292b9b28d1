"""jaxcxai: concept-based XAI and unsupervised cross-modal hashing in JAX.

Subpackages and modules:
  parallel        device meshes, batch sharding, multi-host start-up
  training        TrainState, the `train_step(state, batch, key)` contract, loop
  checkpoint      Orbax checkpointing (save every N, keep K, resume)
  metric_writers  JSON-lines metric records
  hostmem         host allocator settings for XLA:CPU (scripts call it)
  models          flax.linen backbones with named activations, weight import
  data            SynthAerial (embedded default) and real-format loaders
  features        sharded, cached activation extraction
  feature_cache   the on-disk feature cache (reader and chunk writers)
  metrics         retrieval and classification metrics (pure functions)
  hashing         DUCH / CHNR hashing and Hamming search
  concepts        Net2Vec, TCAV, LoCE and their analyses
"""

from jaxcxai import checkpoint as checkpoint
from jaxcxai import hostmem as hostmem
from jaxcxai import metric_writers as metric_writers
from jaxcxai import parallel as parallel
from jaxcxai import training as training

__version__ = "0.1.0"

__all__ = [
    "checkpoint",
    "hostmem",
    "metric_writers",
    "parallel",
    "training",
    "__version__",
]
