"""Pause and resume the watchdog for one service: an annotation, never a new revision.

Only the service's ``annotations`` are updated (update mask ``annotations``),
so the revision template is untouched and Cloud Run creates no revision.
"""

from __future__ import annotations

import json
import time

from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.edges.cloudrun import CloudRun, ConcurrentChange


def set_paused(
    cloud_run: CloudRun, ref: ServiceRef, paused: bool, timeout: float = 30.0, *, by: str = "", reason: str = ""
) -> bool:
    """Set or clear ``rollback-watchdog/paused`` on the service; returns whether anything changed.

    A pause also records who, when and why in ``rollback-watchdog/paused-by`` (``python -m watchdog
    status`` shows it); the switch itself stays ``"true"`` so every reader of it keeps working.
    """
    deadline = time.monotonic() + timeout
    for _ in range(3):
        service = cloud_run.get_service(ref, deadline)
        annotations = dict(service.get("annotations") or {})
        if ledger.paused(annotations) == paused:
            return False
        if paused:
            annotations[ledger.PAUSED_KEY] = "true"
            info = {"by": by[:200], "at": round(time.time(), 3), "reason": reason[:500]}
            annotations[ledger.PAUSE_INFO_KEY] = json.dumps(info, separators=(",", ":"))
        else:
            annotations.pop(ledger.PAUSED_KEY, None)
            annotations.pop(ledger.PAUSE_INFO_KEY, None)
        try:
            cloud_run.annotate(ref, annotations, service.get("etag", ""), deadline)
            return True
        except ConcurrentChange:
            continue  # a deploy landed: read again
    raise ConcurrentChange(f"{ref} kept changing; try again")
