"""Credentials never leave: recognise credential-shaped values, and mask them in any outgoing text.

Pure code, two lines of defence:

1. :func:`looks_secret` decides, value by value, whether an env var value
   (or a command argument) may be shown in a report. The diff shows
   ``changed (value hidden)`` for anything that may be a credential.
2. :func:`redact` runs over every Slack text and every log line just before
   it leaves, and masks whatever credential shapes are still in it.

What counts as a credential shape: URL userinfo (``scheme://user:pass@``),
Slack, GitHub, GitLab, Google, AWS, Stripe and npm token shapes, bearer
tokens, JWTs, PEM blocks, Slack/Discord webhook URLs, ``password=…`` style
assignments and long high-entropy strings. Harmless settings (numbers,
hostnames, paths, ``true``, ``private-ranges-only``) stay visible: in the
incident, ``DB_CONNECT_TIMEOUT_SECONDS: unset → "15"`` was the clue.
"""

from __future__ import annotations

import math
import re
from collections import Counter

MASK = "[redacted]"

# Shapes found inside longer text (logs, messages). Each is specific enough to mask wherever it appears.
_SHAPES = [
    r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|CERTIFICATE|KEY)[A-Z ]*-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)",
    r"\b[a-z][a-z0-9+.-]{1,20}://[^\s/:@\"'<>|]*:[^\s/@\"'<>|]+@",  # URL userinfo with a password
    r"https://hooks\.slack(?:-gov)?\.com/[^\s\"'<>|]+",
    r"https://(?:discord(?:app)?\.com|[a-z0-9-]+\.webhook\.office\.com)/[^\s\"'<>|]*webhook[^\s\"'<>|]*",
    r"\bxox[abposrce]-[A-Za-z0-9-]{8,}",
    r"\bxapp-[0-9]-[A-Za-z0-9-]{8,}",
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bAIza[0-9A-Za-z_-]{30,}",
    r"\bya29\.[0-9A-Za-z._-]{20,}",
    r"\b1//0[0-9A-Za-z_-]{30,}",  # Google OAuth refresh tokens
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",
    r"\bnpm_[A-Za-z0-9]{30,}",
    r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",  # JWT
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,}",
    r"\b(?i:basic)\s+[A-Za-z0-9+/=]{16,}",
    # key=value and key: value where the key names a credential
    r"\b(?i:[a-z0-9_.-]*(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret|authorization)[a-z0-9_.-]*)\s*[=:]\s*(?!\[redacted\])[^\s,;&\"'<>|}]{4,}",
]
_TEXT_SHAPES = re.compile("|".join(f"(?:{s})" for s in _SHAPES))

_HARMLESS = re.compile(
    r"^(?:-?\d+(?:\.\d+)?[a-zA-Z%]{0,3}|true|false|yes|no|on|off|none|null|[a-z]+(?:-[a-z]+)*"
    r"|/[\w./:@-]*|[\w.-]+:\d+|[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:/[\w./-]*)?|https?://[\w.-]+(?::\d+)?(?:/[\w./-]*)?)$"
)


def looks_secret(value: str) -> bool:
    """True when ``value`` (a whole env var value or argument) may be a credential."""
    text = value.strip().strip('"')
    if not text:
        return False
    if _TEXT_SHAPES.search(text):
        return True
    if _HARMLESS.match(text):
        return False
    return _high_entropy(text)


# Every shape above contains one of these (lower-cased): a text without any of them needs no regex scan,
# which keeps the redactor off the cost of a log line (most lines have none).
_TRIGGERS = (
    "://", "xox", "xapp-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "aiza", "ya29.",
    "1//0", "akia", "asia", "agpa", "aida", "aroa", "sk_", "rk_", "pk_", "npm_", "sg.", "eyj", "bearer", "basic",
    "-----begin", "passw", "passwd", "pwd", "secret", "token", "api_key", "api-key", "apikey", "access_key",
    "access-key", "accesskey", "private_key", "private-key", "privatekey", "authorization",
)  # fmt: skip


def redact(text: str) -> str:
    """``text`` with every credential shape masked; everything else unchanged."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    return _TEXT_SHAPES.sub(_mask, text)


def redact_json(value):
    """A JSON-like value (Block Kit blocks) with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    return value


def _mask(match: re.Match) -> str:
    found = match.group(0)
    scheme = re.match(r"^([a-z][a-z0-9+.-]{1,20}://)[^\s@]*@$", found)
    if scheme:  # keep the scheme and host readable: postgres://[redacted]@db:5432/app
        return scheme.group(1) + MASK + "@"
    assignment = re.match(r"(?i)^([a-z0-9_.-]+\s*[=:]\s*)", found)
    if assignment and not found.lower().startswith(("bearer", "basic", "http")):
        return assignment.group(1) + MASK
    return MASK


def _high_entropy(text: str) -> bool:
    """Long random-looking strings (API keys of unknown shape): 20+ characters of a key alphabet, upper and
    lower case and digits, high entropy; or 32+ hex digits. Paths, hostnames and words stay visible."""
    token = max(re.split(r"[\s,;]+", text), key=len)
    if len(token) < 20:
        return False
    if re.fullmatch(r"[0-9a-f]{32,}|[0-9A-F]{32,}", token):
        return True
    if token.startswith("/") or not re.fullmatch(r"[A-Za-z0-9+/=_.-]+", token):
        return False
    if not all(re.search(p, token) for p in (r"[a-z]", r"[A-Z]", r"[0-9]")):
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= 3.5
