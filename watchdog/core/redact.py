"""Credentials never leave: values are shown only when known harmless, and outgoing text is masked.

Pure code, two lines of defence:

1. Default deny, value by value: :func:`harmless` says whether an env value, a
   container argument or a probe header value may be shown at all. Only shapes
   that cannot carry a credential pass: numbers, durations and sizes, booleans,
   short enum-like words (``INFO``, ``private-ranges-only``, ``us-central1``),
   and (:mod:`watchdog.core.changes`) secret references and the values of env
   vars ``WATCHDOG_SHOW_ENV`` names. Everything else is ``(value hidden)``:
   URLs, hostnames, paths and random strings included, because a webhook URL or
   a short hex secret looks like any other identifier. In the incident,
   ``DB_CONNECT_TIMEOUT_SECONDS: unset → "15"`` was the clue, and it passes.
2. :func:`redact` runs over every Slack text and every log field just before
   it leaves, and masks whatever credential shapes are still in it (a value
   an alert or an error message carried in).

What :func:`redact` recognises: URL userinfo (``scheme://user:pass@``, any
scheme case, ``/`` in the password, or no scheme at all), Slack, GitHub,
GitLab, Google, AWS, Stripe, npm, SendGrid and Telegram token shapes, bearer
and basic credentials, JWTs, PEM blocks, Slack/Discord/Teams/Zapier/Telegram
hook URLs, ``password=…`` style assignments (``PWD``, ``_PW`` included),
and ``--db-password VALUE`` arguments. It cannot recognise a random secret
of unknown shape inside free text (an etag or an incident id looks the same):
that is what the first line is for.
"""

from __future__ import annotations

import re

MASK = "[redacted]"

# IAM member kinds and mailto: "serviceAccount:x@p.iam.gserviceaccount.com" is a principal, not userinfo.
_NOT_USERINFO = r"(?!(?:serviceAccount|user|group|domain|deleted|principal|principalSet|mailto):)"

# Shapes found inside longer text (logs, messages). Each is specific enough to mask wherever it appears.
_SHAPES = [
    r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|CERTIFICATE|KEY)[A-Z ]*-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)",
    # URL userinfo with a password, any scheme case; the password may hold "/" (postgresql://app:Xy7/ab+Q9@host)
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s/:@\"'<>|]*:[^\s@\"'<>|]+@",
    # the same without a scheme: app:hunter2@db.internal
    rf"\b{_NOT_USERINFO}[\w.-]+:[^\s@:/\"'<>|]{{3,}}@[\w-]+(?:\.[\w-]+)+",
    r"https://hooks\.slack(?:-gov)?\.com/[^\s\"'<>|]+",
    r"https://(?:discord(?:app)?\.com|[a-z0-9-]+\.webhook\.office\.com)/[^\s\"'<>|]*webhook[^\s\"'<>|]*",
    r"https://hooks\.zapier\.com/hooks/[^\s\"'<>|]+",
    r"https://api\.telegram\.org/bot[^\s\"'<>|]+",
    r"\b\d{6,12}:AA[A-Za-z0-9_-]{30,}",  # a Telegram bot token on its own
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
    # key=value and key: value where the key names a credential (MYSQL_PWD=…, ADMIN_PW=…, X-Api-Key: …)
    r"\b(?i:[a-z0-9_.-]*(?:passw(?:or)?d|passwd|pwd|_pw|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret|authorization)[a-z0-9_.-]*)\s*[=:]\s*[\"']?(?!\[redacted\])[^\s,;&\"'<>|}]{4,}",
    # a command-line flag naming a credential, then its value: --db-password hunter2
    r"(?i:--?[a-z0-9-]*(?:passw(?:or)?d|passwd|pwd|secret|token|api-?key)[a-z0-9-]*)\s+(?!\[redacted\])[^\s\"'<>|]+",
]
_TEXT_SHAPES = re.compile("|".join(f"(?:{s})" for s in _SHAPES))

# Default deny: the shapes a value may have and still be shown (matched against the whole value).
_NUMBER = r"[+-]?\d{1,10}(?:\.\d{1,6})?"
_HARMLESS = re.compile(
    "|".join(
        (
            _NUMBER,
            # durations and sizes: 15s, 300ms, 1h30m, 512Mi, 80%
            rf"{_NUMBER}(?:ns|us|µs|ms|s|m|h|d)(?:\d{{1,4}}(?:ns|us|µs|ms|s|m|h))*",
            rf"{_NUMBER}(?:[KMGTP]i?|[KMGT]B|%)",
            r"(?i:true|false|yes|no|on|off|enabled|disabled|none|null)",
            # short enum-like words: INFO, Debug, private-ranges-only, PRIVATE_RANGES_ONLY, us-central1. Their
            # parts all lower, all upper or capitalised, at most 12 letters; digits only at the end of a
            # word of two parts or more (us-central1, not hunter2).
            r"(?=.{1,32}$)(?:[a-z]{1,12}|[A-Z]{1,12}|[A-Z][a-z]{1,11})"
            r"(?:(?:[-_.](?:[a-z]{1,12}|[A-Z]{1,12}|[A-Z][a-z]{1,11})){1,5}\d{0,2})?",
            "",  # empty
        )
    )
)
# A command-line flag: -v, --verbose, --workers=4 (the value after "=" must be harmless itself).
_FLAG = re.compile(r"(?P<name>-[A-Za-z]|--[a-z]{1,12}(?:-[a-z]{1,12}){0,4}\d{0,2})(?:=(?P<value>.*))?")
# Names (env vars, headers, flags) whose values are credentials whatever they look like: ADMIN_PW=1234 is hidden.
_SENSITIVE_NAME = re.compile(
    r"PASS|PWD|(?:^|[-_])PW(?:$|[-_])|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|DSN|COOKIE|SESSION|SALT|SIGNATURE"
    r"|CERT|(?:^|[-_])(?:PIN|OTP)(?:$|[-_])",
    re.I,
)


def sensitive_name(name: str) -> bool:
    """True when a name (env var, header, flag) says its value is a credential."""
    return bool(_SENSITIVE_NAME.search(name))


def harmless(value: str) -> bool:
    """True when ``value`` (a whole env value, argument or header value) has a shape that carries no secret.

    Default deny: anything not recognised as harmless is hidden by the caller.
    """
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]  # env values are shown as JSON strings
    return bool(_HARMLESS.fullmatch(text))


def harmless_argument(value: str) -> bool:
    """True when a command or argument element may be shown: a harmless value, or a flag with a harmless value."""
    if harmless(value):
        return True
    flag = _FLAG.fullmatch(value.strip())
    if not flag:
        return False
    if flag.group("value") is None:
        return True
    return not sensitive_name(flag.group("name")) and harmless(flag.group("value"))


def credential_flag(value: str) -> bool:
    """True for a flag that names a credential and takes its value from the next argument: ``--db-password``."""
    flag = _FLAG.fullmatch(value.strip())
    return flag is not None and flag.group("value") is None and sensitive_name(flag.group("name"))


# Every shape above contains one of these (lower-cased): a text without any of them needs no regex scan,
# which keeps the redactor off the cost of a log line (most lines have none).
_TRIGGERS = (
    "://", "@", "xox", "xapp-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "aiza", "ya29.",
    "1//0", "akia", "asia", "agpa", "aida", "aroa", "sk_", "rk_", "pk_", "npm_", "sg.", "eyj", "bearer", "basic",
    "-----begin", "passw", "passwd", "pwd", "_pw", "secret", "token", "api_key", "api-key", "apikey", "access_key",
    "access-key", "accesskey", "private_key", "private-key", "privatekey", "authorization", ":aa",
)  # fmt: skip


def redact(text: str) -> str:
    """``text`` with every credential shape masked; everything else unchanged."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    return _TEXT_SHAPES.sub(_mask, text)


def redact_json(value):
    """A JSON-like value with :func:`redact` applied to every string in it (keys included).

    Lists, tuples and sets become lists, other values that are not JSON (a dataclass,
    an exception) become their ``str`` first: the result is always serialisable, so a
    log line built from it is always valid JSON, whatever was masked.
    """
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {redact(str(k)): redact_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_json(v) for v in value]
    return redact(str(value))


def _mask(match: re.Match) -> str:
    found = match.group(0)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]{1,20}://)[^\s@]*@$", found)
    if scheme:  # keep the scheme and host readable: postgres://[redacted]@db:5432/app
        return scheme.group(1) + MASK + "@"
    flag = re.match(r"^(--?[A-Za-z][A-Za-z0-9-]*\s+)", found)
    if flag:  # keep the flag readable: --db-password [redacted]
        return flag.group(1) + MASK
    assignment = re.match(r"(?i)^([a-z0-9_.-]+\s*[=:]\s*)", found)
    if assignment and not found.lower().startswith(("bearer", "basic", "http")):
        return assignment.group(1) + MASK
    return MASK
