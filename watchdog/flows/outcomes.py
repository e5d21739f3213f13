"""What one delivery comes to, and how an error is answered: acknowledged (200) or redelivered (500).

Pub/Sub delivers at least once. Returning normally acknowledges; raising answers 500
and Pub/Sub redelivers. Which wins for an error: one that retrying cannot help
(:data:`PERMANENT`) is acknowledged, logged at ERROR and reported; one that a later
delivery may get past (:data:`RETRY`) is redelivered as :class:`TransientError`;
anything else propagates as it is (500 as well).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as api_exceptions

from watchdog.core import decision as rules
from watchdog.core.vocabulary import Result, State
from watchdog.edges.cloudrun import TRANSIENT, ConcurrentChange

# REST answers map to the HTTP-named exceptions (Forbidden), gRPC ones to the status-named (PermissionDenied).
PERMANENT = (
    api_exceptions.NotFound,
    api_exceptions.PermissionDenied,
    api_exceptions.Forbidden,
    api_exceptions.Unauthenticated,
    api_exceptions.Unauthorized,
    api_exceptions.BadRequest,
    api_exceptions.MethodNotAllowed,
    # 409 / 412 that are not an etag conflict (cloudrun.is_etag_conflict): retrying cannot help
    api_exceptions.Conflict,
    api_exceptions.PreconditionFailed,
)


class TransientError(Exception):
    """Retry later: raised so that the function answers 500 and Pub/Sub redelivers."""


class InProgress(Exception):
    """Another delivery of this incident is between its rollback and its report."""


# Worth another delivery: Cloud Run's transient answers, retries run out, a lost etag race, another delivery's turn.
RETRY = (*TRANSIENT, api_exceptions.RetryError, ConcurrentChange, InProgress)


@dataclass(frozen=True)
class Outcome:
    """What one delivery came to; logged and returned (tests and the CLI read it)."""

    result: Result | State  # a rollback's: the state its card shows
    reason: str  # the decision's Reason, or the flow's own word (an error's class name)
    incident_id: str = ""
    service: str = ""
    decision: rules.Decision | None = None
    posted: bool = False
