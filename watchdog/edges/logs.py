"""Structured log lines, one JSON object per line, as Cloud Logging reads them from stdout.

``severity`` and ``message`` are Cloud Logging's special fields; everything
else (incident id, service, decision, revisions, timings) lands in
``jsonPayload`` where an auditor can filter on it. Every field goes through
:func:`watchdog.core.redact.redact_json` before the line is serialised:
credential shapes are masked whatever field they end up in, and the line stays
one valid JSON object (masking the serialised line instead let an unterminated
PEM header in an alert field swallow the closing quotes, and Cloud Logging read
a plain text line without severity or fields).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from watchdog.core.redact import redact_json


def log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, "component": "rollback-watchdog", **fields}
    entry.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    line = json.dumps(redact_json(entry), ensure_ascii=False)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
