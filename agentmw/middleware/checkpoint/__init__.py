"""`Checkpoint`: durable steps and their replay."""

from agentmw.errors import ReplayDivergedError
from agentmw.middleware.checkpoint.layer import Checkpoint

__all__ = ["Checkpoint", "ReplayDivergedError"]
