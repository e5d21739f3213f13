"""The redactor: credential shapes are recognised and masked; the clues on-call needs stay visible."""

from __future__ import annotations

import json

import pytest

from tests.credentials import CREDENTIALS, HARMLESS
from watchdog.core import ledger
from watchdog.core.redact import looks_secret, redact, redact_json


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_credential_values_look_secret(name):
    assert looks_secret(CREDENTIALS[name])


@pytest.mark.parametrize(
    "value",
    [
        *HARMLESS.values(),
        "15",
        "true",
        "all-traffic",
        "https://api.example.com/v1",
        "redis.internal:6379",
        "gcr.io/netra-staging/netra-auth:v1.42.0",
        "netra-staging:us-central1:staging-shared-postgres",
        "projects/netra-staging/locations/us-central1/connectors/staging-connector",
    ],
)
def test_harmless_values_stay_visible(value):
    assert not looks_secret(value)


# A random key of unknown shape is hidden where it is a value (the diff); in free text the redactor masks
# shapes only, since etags, uids and incident ids are random-looking too.
@pytest.mark.parametrize("name", sorted(set(CREDENTIALS) - {"RANDOM"}))
def test_redact_masks_each_shape_inside_any_text(name):
    secret = CREDENTIALS[name]
    line = json.dumps({"message": f"deploy failed with {secret} in it", "field": {"nested": [secret]}})
    masked = redact(line)
    assert "[redacted]" in masked
    assert secret.split("\n")[0].split(" ")[-1] not in masked


def test_redact_keeps_the_readable_part_of_a_url_with_a_password():
    assert (
        redact("DATABASE_URL=postgres://app:hunter22@db:5432/app") == "DATABASE_URL=postgres://[redacted]@db:5432/app"
    )


def test_redact_json_masks_every_string_in_blocks():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"see {CREDENTIALS['SLACK_BOT']}"}}]
    assert CREDENTIALS["SLACK_BOT"] not in json.dumps(redact_json(blocks))
    assert redact_json(blocks)[0]["type"] == "section"


def test_report_text_without_credentials_is_unchanged():
    text = "*netra-auth-service-00042-vex changed vpc egress: private-ranges-only → all-traffic* `&lt;x&gt;`"
    assert redact(text) == text


class TestLedgerMemory:
    """What the last 10 rollback records must not forget."""

    def test_revisions_rolled_away_from_outlive_the_records(self):
        annotations: dict = {}
        for i in range(25):
            annotations = ledger.with_record(
                annotations, ledger.Record(f"0.i{i}", f"rev-{i}", f"rev-{i + 100}", 1000.0 + i)
            )
        memory = ledger.read(annotations)
        assert len(memory.records) == ledger.KEEP
        assert {f"rev-{i}" for i in range(25)} <= memory.rolled_away

    def test_unreadable_is_never_written_over(self):
        broken = {ledger.ROLLBACKS_KEY: "[{not json"}
        assert isinstance(ledger.read(broken), ledger.Unreadable)
        assert ledger.with_noticed(broken, "0.x") is None
        assert ledger.with_closed(broken, "0.x") is None
        with pytest.raises(ValueError, match="must not be overwritten"):
            ledger.with_record(broken, ledger.Record("0.x", "a", "b", 1.0))

    @pytest.mark.parametrize("value", ["true", "True", "YES", "1", "on", " On "])
    def test_pause_takes_the_words_of_watchdog_paused(self, value):
        assert ledger.paused({ledger.PAUSED_KEY: value})

    @pytest.mark.parametrize("value", ["", "false", "no", "0", "off", "paused?"])
    def test_anything_else_is_not_a_pause(self, value):
        assert not ledger.paused({ledger.PAUSED_KEY: value})
