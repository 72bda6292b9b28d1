"""Training state, the train-step contract and the loop."""

from jaxcxai.training.loop import NonFiniteLossError as NonFiniteLossError
from jaxcxai.training.loop import first_nonfinite as first_nonfinite
from jaxcxai.training.loop import train_loop as train_loop
from jaxcxai.training.state import TrainState as TrainState
from jaxcxai.training.state import abstract_state as abstract_state
from jaxcxai.training.state import create_train_state as create_train_state
from jaxcxai.training.state import init_state_sharded as init_state_sharded
from jaxcxai.training.state import make_train_step as make_train_step

__all__ = [
    "NonFiniteLossError",
    "TrainState",
    "abstract_state",
    "create_train_state",
    "first_nonfinite",
    "init_state_sharded",
    "make_train_step",
    "train_loop",
]
