"""Unsupervised cross-modal hashing: DUCH, CHNR and Hamming search.

models   image/text hash nets, hash discriminator, CHNR noise detector
losses   NT-Xent (reference and standard), adversarial BCE + gradient
         penalty, quantization, bit balance, CHNR noise weighting
state    DUCH hyperparameters, training state, initialisation, encoding
duch     DUCH train step over the global batch, epoch-end updates
multiview  both hash nets over their views, hand-written backward (speed)
feed     epoch batches, gathered on the host or on the devices
epochs   one epoch of a phase: the jitted step, its batches, the epoch's metrics
optim    torch-style coupled-L2 Adam with packed moments (speed)
chnr     CHNR meta phase (noise detector on the clean subset), main phase
detector CHNR's noise detector: fake pairs, optimizer, training step
contrastive  NT-Xent, similarity blocks shared between pairs
evaluation  mAP@K of trained nets in four directions; the codes file
schedule the epoch schedule: phases, resume epoch, caption draws, eval epochs
noise_study  DUCH vs CHNR under caption noise: seeds, verdict, report figures
data     feature sources (h5, synthetic, SynthAerial), splits, CHNR sets
aerial   SynthAerial hashing features: MobileNetV2 views, MiniLM captions
search/  exact top-k Hamming search, chunked and sharded (device and host
         candidate selection)
"""

from jaxcxai.hashing import aerial as aerial
from jaxcxai.hashing import chnr as chnr
from jaxcxai.hashing import contrastive as contrastive
from jaxcxai.hashing import data as data
from jaxcxai.hashing import detector as detector
from jaxcxai.hashing import duch as duch
from jaxcxai.hashing import epochs as epochs
from jaxcxai.hashing import evaluation as evaluation
from jaxcxai.hashing import feed as feed
from jaxcxai.hashing import losses as losses
from jaxcxai.hashing import models as models
from jaxcxai.hashing import multiview as multiview
from jaxcxai.hashing import noise_study as noise_study
from jaxcxai.hashing import optim as optim
from jaxcxai.hashing import schedule as schedule
from jaxcxai.hashing import search as search
from jaxcxai.hashing import state as state
from jaxcxai.hashing.models import HashDiscriminator as HashDiscriminator
from jaxcxai.hashing.models import HashNet as HashNet
from jaxcxai.hashing.models import NoiseDetector as NoiseDetector
from jaxcxai.hashing.search import hamming_topk as hamming_topk
from jaxcxai.hashing.search import pack_words as pack_words

__all__ = [
    "HashDiscriminator",
    "HashNet",
    "NoiseDetector",
    "aerial",
    "chnr",
    "contrastive",
    "data",
    "detector",
    "duch",
    "epochs",
    "evaluation",
    "feed",
    "hamming_topk",
    "losses",
    "models",
    "multiview",
    "noise_study",
    "optim",
    "schedule",
    "pack_words",
    "search",
    "state",
]
