"""`RateLimit`: token-aware GCRA limits, FIFO waiting lines and reservations."""

from agentmw.middleware.rate_limit.layer import RateLimit
from agentmw.middleware.rate_limit.reservation import Reservation

__all__ = ["RateLimit", "Reservation"]
