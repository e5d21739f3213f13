"""Credential shapes a breaking revision may carry, in env values, container args and probe headers.

Each entry names the env var (or argument, or header) it sits in, its value, the ``needle`` that must
never appear in anything the watchdog says (the credential part: a URL's password, a token), and
whether :func:`watchdog.core.redact.redact` recognises it inside free text (``shape``): a short hex or
base32 secret, a random key or a plain-word password has no shape, so only the first line of defence
(default deny) keeps it in, and the tests say so rather than pretend otherwise.

The values are made up in the formats the providers document; none is a real credential.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credential:
    name: str  # the env var it is the value of
    value: str
    needle: str  # never to be seen outside the process
    shape: bool = True  # the redactor recognises it inside free text


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"

ENV: tuple[Credential, ...] = (
    Credential("DATABASE_URL", "postgres://app:Sup3rS3cret!@10.0.0.5:5432/app", "Sup3rS3cret!"),
    Credential("DB_DSN", "postgresql://app:Xy7/ab+Q9zK@host", "Xy7/ab+Q9zK"),  # "/" in the password
    Credential("PRIMARY_DB", "POSTGRES://APP:Zq8mK2pLx7@db.internal:5432/app", "Zq8mK2pLx7"),  # upper-case scheme
    Credential("REPLICA", "app:hunter2pass@db.internal:5432", "hunter2pass"),  # no scheme at all
    Credential("MYSQL_PWD", "letmein", "letmein", shape=False),  # a word: hidden by its name only
    Credential("ADMIN_PW", "73914286", "73914286", shape=False),  # a number: hidden by its name only
    Credential("SIGNING_HEX", "9f86d081884c7d65", "9f86d081884c7d65", shape=False),  # short hex
    Credential("TOTP_SEED", "JBSWY3DPEHPK3PXP", "JBSWY3DPEHPK3PXP", shape=False),  # base32
    Credential(
        "TELEGRAM_HOOK",
        "https://api.telegram.org/bot123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/sendMessage",
        "AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs",
    ),
    Credential("ZAPIER_HOOK", "https://hooks.zapier.com/hooks/catch/1234567/abcd3fg/", "abcd3fg"),
    Credential(
        "SLACK_HOOK",
        "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    Credential(
        "DISCORD_HOOK",
        "https://discord.com/api/webhooks/123456789012345678/Xk3jd8AbcQ0zP-LmNoPqRsTuVwXyZ012345",
        "Xk3jd8AbcQ0zP-LmNoPqRsTuVwXyZ012345",
    ),
    Credential(
        "TEAMS_HOOK",
        "https://contoso.webhook.office.com/webhookb2/7aa49aa6-7840-443d-806c-08ebe8f59966@c662313f/IncomingWebhook/8"
        "f1e8d7c6b5a49382716051423324150/ab12cd34",
        "8f1e8d7c6b5a49382716051423324150",
    ),
    Credential("GITHUB", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    Credential(
        "GITHUB_FINE",
        "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "11ABCDEFG0123456789_abc",
    ),
    Credential("GITLAB", "glpat-" + "xY9zA8bC7dE6fG5hI4jK", "xY9zA8bC7dE6fG5hI4jK"),
    Credential("GOOGLE_API", "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    Credential(
        "GOOGLE_OAUTH", "ya29." + "a0AfH6SMBx7Qp9L2kZ8vN3mR5tY1wE4uI6oP", "a0AfH6SMBx7Qp9L2kZ8vN3mR5tY1wE4uI6oP"
    ),
    Credential("GOOGLE_REFRESH", "1//0" + "gLmN4oP5qR6sT7uV8wX9yZ0aB1cD2eF3gH4", "gLmN4oP5qR6sT7uV8wX9yZ0aB1cD2eF3gH4"),
    Credential(
        "GCP_SA_KEY",
        '{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\\n'
        + PEM_BODY
        + '\\n-----END PRIVATE KEY-----\\n"}',
        PEM_BODY,
    ),
    Credential("AWS", "AKIA" + "IOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    Credential(
        "AWS_SECRET",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        shape=False,
    ),
    Credential("STRIPE", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    Credential("NPM", "npm_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"),
    Credential(
        "SENDGRID", "SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr", "TwL2iGABf9DHoTf"
    ),
    Credential(
        "JWT",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    Credential("TLS_KEY", "-----BEGIN PRIVATE KEY-----\n" + PEM_BODY + "\n-----END PRIVATE KEY-----", PEM_BODY),
    Credential("UNTERMINATED_PEM", "-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY[::-1], PEM_BODY[::-1]),
    Credential("UPSTREAM_BEARER", "Bearer " + "abcdef0123456789abcdef0123456789", "abcdef0123456789abcdef0123456789"),
    Credential("UPSTREAM_BASIC", "Basic " + "dXNlcjpwYXNzd29yZDEyMw==", "dXNlcjpwYXNzd29yZDEyMw=="),
    Credential("SLACK_BOT", "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx"),
    Credential("SLACK_APP", "xapp-" + "1-A0123456789-0123456789012-abcdef0123", "A0123456789-0123456789012"),
    Credential("RANDOM", "q8Zr2LmX9vT4bN7cK1pW6sY3hJ5dF0gA", "q8Zr2LmX9vT4bN7cK1pW6sY3hJ5dF0gA", shape=False),
    Credential("DATADOG", "3f9a2c7e1b8d4f6a0c5e9b2d7f1a4c8e", "3f9a2c7e1b8d4f6a0c5e9b2d7f1a4c8e", shape=False),
    Credential("LEGACY_LOGIN", "Tr0ub4dor&3", "Tr0ub4dor&3", shape=False),  # a password under a harmless name
)

# Container args: each list replaces the breaking revision's args; the needle must never be seen.
ARGS: tuple[tuple[list[str], str], ...] = (
    (["--db-password", "hunter2secretArg"], "hunter2secretArg"),
    (["--db-password", "swordfishing"], "swordfishing"),  # a plain word, after a flag that names a credential
    (["--api-token=tok9a8b7c6d5e"], "tok9a8b7c6d5e"),
    (["-pS3cretMysql"], "S3cretMysql"),
    (["serve", "--upstream", "https://svc:Pw9x2Lk@internal.example"], "Pw9x2Lk"),
)

# Startup probe httpHeaders (name, value, needle).
HEADERS: tuple[tuple[str, str, str], ...] = (
    ("X-Api-Key", "k-8f3a9c2e71d4", "k-8f3a9c2e71d4"),
    ("Authorization", "Bearer " + "zzTopSecretProbeToken42", "zzTopSecretProbeToken42"),
    ("X-Internal-Secret", "letmein", "letmein"),
    ("X-Check", "5f4dcc3b5aa765d61d8327deb882cf99", "5f4dcc3b5aa765d61d8327deb882cf99"),
)

# What stays visible: the clues on-call needs, in the shapes default deny lets through.
HARMLESS: dict[str, str] = {
    "DB_CONNECT_TIMEOUT_SECONDS": "15",
    "CONNECT_TIMEOUT": "15s",
    "POOL_WAIT": "300ms",
    "MEMORY": "512Mi",
    "FEATURE_X": "true",
    "LOG_LEVEL": "INFO",
    "MODE": "private-ranges-only",
    "REGION": "us-central1",
}


def needles() -> list[tuple[str, str]]:
    """(where it came from, what must never be seen) for every credential in the corpus."""
    found = [(f"env {c.name}", c.needle) for c in ENV]
    found += [(f"args {' '.join(args)[:40]}", needle) for args, needle in ARGS]
    found += [(f"header {name}", needle) for name, _value, needle in HEADERS]
    return found
