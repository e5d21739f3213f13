"""Structured log lines, one JSON object per line, as Cloud Logging reads them from stdout.

``severity`` and ``message`` are Cloud Logging's special fields; everything
else (incident id, service, decision, revisions, timings) lands in
``jsonPayload`` where an auditor can filter on it. Every line goes through
:func:`watchdog.core.redact.redact` last: credential shapes are masked, whatever
field they end up in.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from watchdog.core.redact import redact


def log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, "component": "rollback-watchdog", **fields}
    entry.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    line = json.dumps(entry, default=str, ensure_ascii=False)
    sys.stdout.write(redact(line) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
