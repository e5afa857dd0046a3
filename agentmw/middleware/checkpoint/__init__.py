"""`Checkpoint`: durable steps and their replay."""

from agentmw.errors import InFlightStepError, ReplayDivergedError
from agentmw.middleware.checkpoint.layer import Checkpoint

__all__ = ["Checkpoint", "InFlightStepError", "ReplayDivergedError"]
