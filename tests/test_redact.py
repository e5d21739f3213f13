"""Values leave by default deny, and the redactor masks what is still in the text: the clues stay visible."""

from __future__ import annotations

import copy
import json

import pytest

from tests import credential_corpus as corpus
from tests.credentials import CREDENTIALS
from watchdog.core import ledger
from watchdog.core.changes import HIDDEN, template_changes
from watchdog.core.redact import harmless, harmless_argument, redact, redact_json

BASE = {"name": "r1", "containers": [{"name": "app", "image": "gcr.io/p/app:1", "env": []}]}


def _changed(**container) -> list:
    newer = copy.deepcopy(BASE)
    newer["name"] = "r2"
    newer["containers"][0].update(container)
    return template_changes(BASE, newer)


class TestDefaultDeny:
    """A value is shown only when its shape is known harmless (or its name is listed as safe)."""

    @pytest.mark.parametrize("secret", corpus.ENV, ids=lambda c: c.name)
    def test_every_credential_in_env_is_hidden(self, secret):
        [change] = _changed(env=[{"name": secret.name, "value": secret.value}])
        assert (change.old, change.new) == ("unset", HIDDEN)
        assert secret.needle not in str(change)

    @pytest.mark.parametrize(("args", "needle"), corpus.ARGS, ids=lambda a: str(a)[:30])
    def test_every_credential_in_args_is_hidden(self, args, needle):
        [change] = _changed(args=args)
        assert str(change) == "container.args: changed (value hidden)"

    @pytest.mark.parametrize(("header", "value", "needle"), corpus.HEADERS, ids=lambda h: str(h)[:20])
    def test_every_credential_in_probe_headers_is_hidden(self, header, value, needle):
        probe = {"httpGet": {"path": "/healthz", "port": 8080, "httpHeaders": [{"name": header, "value": value}]}}
        [change] = _changed(startupProbe=probe)
        assert needle not in str(change)
        assert header in change.new  # the shape stays readable
        assert "/healthz" in change.new

    @pytest.mark.parametrize(("name", "value"), sorted(corpus.HARMLESS.items()))
    def test_harmless_shapes_stay_visible(self, name, value):
        [change] = _changed(env=[{"name": name, "value": value}])
        assert change.new == json.dumps(value)

    @pytest.mark.parametrize(
        "value",
        ["/cloudsql/p:r:db", "redis.internal:6379", "https://api.example.com/v1", "hunter2", "deadbeef12",
         "gcr.io/netra-staging/netra-auth:v1.42.0", "a" * 40, "AbCdEfGh", "1" * 11],
    )  # fmt: skip
    def test_anything_else_is_hidden_whatever_it_looks_like(self, value):
        assert not harmless(value)

    def test_a_name_listed_in_show_env_is_shown(self):
        newer = copy.deepcopy(BASE)
        newer["containers"][0]["env"] = [{"name": "DATABASE_HOST", "value": "/cloudsql/p:r:db"}]
        [hidden] = template_changes(BASE, newer)
        [shown] = template_changes(BASE, newer, frozenset({"DATABASE_HOST"}))
        assert hidden.new == HIDDEN
        assert shown.new == '"/cloudsql/p:r:db"'

    def test_a_harmless_value_under_a_credential_name_is_hidden(self):
        [change] = _changed(env=[{"name": "DB_PASSWORD", "value": "15"}])
        assert change.new == HIDDEN

    def test_one_hidden_side_hides_the_other(self):
        older = copy.deepcopy(BASE)
        older["containers"][0]["env"] = [{"name": "UPSTREAM", "value": "15"}]
        newer = copy.deepcopy(BASE)
        newer["containers"][0]["env"] = [{"name": "UPSTREAM", "value": "https://u:p4ssw0rd@x"}]
        [change] = template_changes(older, newer)
        assert str(change) == "container.env.UPSTREAM: changed (value hidden)"

    def test_secret_references_stay_shown(self):
        ref = {
            "name": "DB_PASSWORD",
            "valueSource": {"secretKeyRef": {"secret": "projects/p/secrets/db", "version": "3"}},
        }
        [change] = _changed(env=[ref])
        assert change.new == "secret:db:3"

    def test_plain_flags_and_numbers_in_args_stay_shown(self):
        [change] = _changed(args=["--workers=4", "--timeout", "30s", "-v"])
        assert change.new == "--workers=4, --timeout, 30s, -v"

    @pytest.mark.parametrize("arg", ["--token=abc", "--db-password", "-pS3cret", "/bin/sh"])
    def test_flag_values_that_name_a_credential_are_not_harmless(self, arg):
        assert not harmless_argument(arg) or arg == "--db-password"

    def test_a_probe_path_with_a_query_string_is_hidden(self):
        probe = {"httpGet": {"path": "/healthz?key=abc123", "port": 8080}}
        [change] = _changed(startupProbe=probe)
        assert "abc123" not in str(change)


# The redactor, the second line: shapes it recognises are masked inside any text.
@pytest.mark.parametrize("secret", [c for c in corpus.ENV if c.shape], ids=lambda c: c.name)
def test_redact_masks_each_shape_inside_any_text(secret):
    line = json.dumps({"message": f"deploy failed with {secret.value} in it", "field": {"nested": [secret.value]}})
    masked = redact(line)
    assert "[redacted]" in masked
    assert secret.needle not in masked


@pytest.mark.parametrize("name", sorted(set(CREDENTIALS) - {"RANDOM"}))
def test_redact_masks_the_older_corpus_too(name):
    assert CREDENTIALS[name].split("\n")[0].split(" ")[-1] not in redact(f"x {CREDENTIALS[name]} y")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("DATABASE_URL=postgres://app:hunter22@db:5432/app", "DATABASE_URL=postgres://[redacted]@db:5432/app"),
        ("url POSTGRESQL://app:Xy7/ab+Q9zK@host/db", "url POSTGRESQL://[redacted]@host/db"),
        ("run --db-password hunter2secretArg now", "run --db-password [redacted] now"),
        ("MYSQL_PWD=letmein ADMIN_PW=73914286", "MYSQL_PWD=[redacted] ADMIN_PW=[redacted]"),
        ("X-Api-Key: k-8f3a9c2e71d4", "X-Api-Key: [redacted]"),
    ],
)
def test_redact_keeps_the_readable_part(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "*netra-auth-service-00042-vex changed vpc egress: private-ranges-only → all-traffic* `&lt;x&gt;`",
        "gcloud iam service-accounts add-iam-policy-binding backend-runtime@netra-staging.iam.gserviceaccount.com"
        " --member serviceAccount:watchdog@netra-staging.iam.gserviceaccount.com --role roles/iam.serviceAccountUser",
        'on-call: alice@example.com, DB_CONNECT_TIMEOUT_SECONDS: unset → "15"',
    ],
)
def test_text_without_credentials_is_unchanged(text):
    assert redact(text) == text


def test_redact_json_masks_every_string_and_keeps_the_shape():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"see {CREDENTIALS['SLACK_BOT']}"}}]
    assert CREDENTIALS["SLACK_BOT"] not in json.dumps(redact_json(blocks))
    assert redact_json(blocks)[0]["type"] == "section"


def test_redact_json_makes_anything_serialisable():
    """A log field may be a tuple, a set or an exception: the result is plain JSON, masked."""
    error = ValueError("token=abcd1234efgh")
    cleaned = redact_json({"error": error, "revisions": ("a", "b"), "n": 1, "ok": None})
    assert json.loads(json.dumps(cleaned)) == {"error": "token=[redacted]", "revisions": ["a", "b"], "n": 1,
                                               "ok": None}  # fmt: skip


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


@pytest.mark.parametrize(
    "field",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn",  # unterminated: ran to the end of the line
        'token="abc123def" and more',
        {"nested": ["postgresql://app:Xy7/ab+Q9zK@host", ("tuple", 1)]},
    ],
    ids=["unterminated-pem", "quoted-token", "nested"],
)
def test_a_log_line_stays_one_valid_json_object_whatever_is_masked(capsys, field):
    from watchdog.edges import logs

    logs.warning("decision for auth", incident_id="0.x", summary=field, service="p/r/auth")
    [line] = capsys.readouterr().out.splitlines()
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert (entry["incident_id"], entry["service"]) == ("0.x", "p/r/auth")
    assert "[redacted]" in json.dumps(entry["summary"])
    for secret in ("MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn", "abc123def", "Xy7/ab+Q9zK"):
        assert secret not in line
