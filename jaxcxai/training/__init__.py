"""Training state, the train-step contract, the loop and trained backbones.

state     `TrainState`, `create_train_state`, `state_from_variables`,
          `make_train_step` (the
          `train_step(state, batch, key) -> (state, metrics)` contract)
loop      the training loop with logging, checkpoints, evaluation hooks
classify  classification loss with a multi-label head, prediction, metrics
backbone  `backbone.json` of a classifier run and `load_trained`
"""

from jaxcxai.training import backbone as backbone
from jaxcxai.training import classify as classify
from jaxcxai.training.backbone import TrainedBackbone as TrainedBackbone
from jaxcxai.training.backbone import load_trained as load_trained
from jaxcxai.training.loop import NonFiniteLossError as NonFiniteLossError
from jaxcxai.training.loop import first_nonfinite as first_nonfinite
from jaxcxai.training.loop import train_loop as train_loop
from jaxcxai.training.state import TrainState as TrainState
from jaxcxai.training.state import abstract_state as abstract_state
from jaxcxai.training.state import create_train_state as create_train_state
from jaxcxai.training.state import init_state_sharded as init_state_sharded
from jaxcxai.training.state import make_train_step as make_train_step
from jaxcxai.training.state import state_from_variables as state_from_variables

__all__ = [
    "backbone",
    "classify",
    "TrainedBackbone",
    "load_trained",
    "NonFiniteLossError",
    "TrainState",
    "abstract_state",
    "create_train_state",
    "state_from_variables",
    "first_nonfinite",
    "init_state_sharded",
    "make_train_step",
    "train_loop",
]
