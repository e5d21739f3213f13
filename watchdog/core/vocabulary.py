"""The words the watchdog decides, logs and renders in, one ``StrEnum`` each.

Each member is the string it always was (``str(Action.ROLLBACK) == "rollback"``, and JSON, f-strings and the
ledger see the plain string), so log lines, the decision metric's labels and what the ledger stores are
unchanged; code compares members, never a bare string that could be misspelled.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What the decision says to do (watchdog/core/decision.py)."""

    ROLLBACK = "rollback"
    REPORT = "report"
    RESEND_REPORT = "resend_report"
    IN_PROGRESS = "in_progress"
    NOTHING = "nothing"
    NEED_MORE = "need_more_revisions"


class Reason(StrEnum):
    """Why: the decision's rules (watchdog/core/decision.py) and the guards that hold a rollback back
    (watchdog/core/guards.py), in the order they win."""

    LEDGER_UNREADABLE = "ledger_unreadable"
    ALREADY_HANDLED = "already_handled"
    ALREADY_CLOSED = "already_closed"
    NEWEST_NOT_READY = "newest_not_ready"
    NO_TRAFFIC = "no_traffic"
    AMBIGUOUS_REVISION = "ambiguous_revision"
    NOT_SERVING = "not_serving"
    ROLLBACK_DID_NOT_FIX = "rollback_did_not_fix"
    REVISION_NOT_FOUND = "revision_not_found"
    NO_MATCHING_CHANGE = "no_matching_change"
    REVERT = "revert"
    CHANGE_TOO_OLD = "change_too_old"
    NO_KNOWN_GOOD_TARGET = "no_known_good_target"
    OUT_OF_SCOPE = "out_of_scope"
    PROJECT_NOT_ALLOWED = "project_not_allowed"
    NOT_CLOUD_RUN_INCIDENT = "not_cloud_run_incident"
    POLICY_NOT_ALLOWED = "policy_not_allowed"
    STALE_ALERT = "stale_alert"
    PAUSED = "paused"
    UNDONE = "undone"
    COOLDOWN = "cooldown"
    DRY_RUN = "dry_run"
    ROLLBACK = "rollback"
    ALREADY_REPORTED = "already_reported"
    NEED_MORE = "need_more_revisions"


class Result(StrEnum):
    """What one delivery came to (watchdog/flows/outcomes.py ``Outcome.result``); a rollback's outcome is its
    card's state (:class:`State`) instead."""

    IGNORED = "ignored"
    NOTHING = "nothing"
    REPORTED = "reported"
    ERROR = "error"
    RETRY = "retry"
    VERIFIED = "verified"
    WARNED = "warned"
    NOTED = "noted"
    HELD = "held"


class State(StrEnum):
    """The state an incident's card describes (watchdog/core/card.py)."""

    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    UNVERIFIED = "unverified"
    FAILED = "failed"
    REVERTING_FIELD = "reverting_field"
    FIELD_REVERTED = "field_reverted"
    REVERT_FAILED = "revert_failed"
    RECOVERED = "recovered"
    ESCALATED = "escalated"
    UNDONE = "undone"
    PAUSED = "paused"


class VerdictAction(StrEnum):
    """Verification's verdict on a rollback (watchdog/core/verification.py); the final ones are recorded as the
    ledger record's ``state``."""

    WAIT = "wait"
    RECOVERED = "recovered"
    ESCALATED = "escalated"
    UNDONE = "undone"
    UNVERIFIED = "unverified"
    NOTHING = "nothing"


class DeployAction(StrEnum):
    """What the sentinel does about a deploy (watchdog/core/sentinel.py)."""

    WARN = "warn"
    NOTE = "note"  # a message in the pinned incident's thread
    NOTHING = "nothing"


class DeployReason(StrEnum):
    """Why the sentinel says what it says about a deploy (watchdog/core/sentinel.py ``judge``)."""

    PINNED = "pinned"
    RELEASES_PIN = "releases_pin"
    RELEASES_PIN_FIXED = "releases_pin_fixed"
    RISKY = "risky"
    NO_RISKY_CHANGE = "no_risky_change"
    NEED_MORE = "need_more_revisions"
