"""`Retry` and the backoff it waits with."""

from agentmw.middleware.retry.backoff import backoff_delay
from agentmw.middleware.retry.layer import Retry

__all__ = ["Retry", "backoff_delay"]
