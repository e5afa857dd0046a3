"""`Checkpoint`: durable steps, their replay, and durable approvals."""

from agentmw.errors import (
    ApprovalPendingError,
    ApprovalRejectedError,
    InFlightStepError,
    ReplayDivergedError,
)
from agentmw.middleware.checkpoint.layer import Checkpoint

__all__ = [
    "ApprovalPendingError",
    "ApprovalRejectedError",
    "Checkpoint",
    "InFlightStepError",
    "ReplayDivergedError",
]
