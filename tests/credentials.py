"""A corpus of credential shapes, and harmless values that must stay visible (they are the clue)."""

from __future__ import annotations

CREDENTIALS = {
    "DATABASE_URL": "postgres://app:Sup3rS3cret!@10.0.0.5:5432/app",
    "SLACK_HOOK": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "GITHUB": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "GOOGLE": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "AWS": "AKIA" + "IOSFODNN7EXAMPLE",
    "STRIPE": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "BEARER": "Bearer " + "abcdef0123456789abcdef0123456789",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "PEM": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
    "RANDOM": "q8Zr2LmX9vT4bN7cK1pW6sY3hJ5dF0gA",
    "SLACK_BOT": "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
}
HARMLESS = {"DB_CONNECT_TIMEOUT_SECONDS": "15", "DATABASE_HOST": "/cloudsql/p:r:db", "MODE": "private-ranges-only"}
