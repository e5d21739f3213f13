"""The buttons' endpoint answers every request cleanly: 401 unless Slack signed it, 400 for a signed payload of
the wrong shape, and never a 5xx for a request that did not pass authentication.

The real ``slack_actions`` function in process (functions-framework's ``create_app(...).test_client()``),
with the Slack and Cloud Run stand-ins on loopback; hypothesis generates the headers and the bodies.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BACKEND
from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.slack import TOKEN, SlackStandIn, block_actions, signed, user
from tests.support import ROOT, fixture
from watchdog.config import ServiceRef
from watchdog.core import actions, ledger

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, APPROVER, INCIDENT = "T0WATCH", "U0ONCALL", "0.backend-startup-1"
REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def world():
    """Stand-ins with the backend rolled back (its ledger record), and the card Slack holds for it."""
    with CloudRunStandIn(fixture("cloudrun/incident_seed.json")) as cloud_run, SlackStandIn() as slack:
        with cloud_run.state.lock:
            service = cloud_run.state.services[BACKEND]
            record = ledger.Record(INCIDENT, "netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz",
                                   time.time() - 60, before=(("LATEST", 100, ""),),
                                   after=(("netra-backend-staging-00118-paz", 100),))  # fmt: skip
            service["annotations"] = ledger.with_record(service.get("annotations"), record)
        slack.state.users[APPROVER] = user(APPROVER, team=TEAM)
        posted = slack.state.accept("chat.postMessage", {"channel": "C0ONCALL", "text": "card",
                                                         "blocks": [actions.buttons(REF, INCIDENT)]})  # fmt: skip
        yield cloud_run, slack, copy.deepcopy(posted)  # the card as first posted: every click has its buttons


@pytest.fixture(scope="module")
def client(world):
    cloud_run, slack, _ = world
    from functions_framework import create_app

    from watchdog.flows import slack_actions

    env = {
        "FUNCTION_TARGET": "slack_actions",  # create_app sets it; set here so it is restored after
        "SLACK_SIGNING_SECRET": SECRET,
        "WATCHDOG_SLACK_TEAM": TEAM,
        "WATCHDOG_SLACK_APPROVERS": APPROVER,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_CHANNEL": "C0ONCALL",
        "SLACK_API_URL": slack.api_url,
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "WATCHDOG_SERVICES": "us-central1/netra-backend-staging",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        slack_actions._groups.clear()
        yield create_app("slack_actions", str(ROOT / "main.py"), "http").test_client()


def ack(card: dict, action_ts: str = "") -> bytes:
    payload = block_actions(card, "acknowledge", APPROVER, TEAM, action_ts)
    return urlencode({"payload": json.dumps(payload)}).encode()


def recorded(cloud_run) -> list:
    annotations = cloud_run.state.read_service(BACKEND)["annotations"]
    return [e for e in ledger.find(annotations, INCIDENT).events if e[0] == "acknowledge"]


def _sig(secret: str, stamp: str, body: bytes, scheme: str = "v0") -> str:
    return f"{scheme}=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()


def _variant(name: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The request for one signature variant: (body sent, headers)."""
    now = int(time.time())
    stamp = str(now)
    good = _sig(SECRET, stamp, body)
    variants = {
        "Slack's own signature": (body, stamp, good),
        "skew -299 s": (body, str(now - 299), _sig(SECRET, str(now - 299), body)),
        "skew +299 s": (body, str(now + 299), _sig(SECRET, str(now + 299), body)),
        "skew -301 s": (body, str(now - 301), _sig(SECRET, str(now - 301), body)),
        "skew +301 s": (body, str(now + 301), _sig(SECRET, str(now + 301), body)),
        "another secret": (body, stamp, _sig("another-secret-000000000000000000", stamp, body)),
        "no signature": (body, stamp, None),
        "no timestamp": (body, None, good),
        "neither header": (body, None, None),
        "an empty signature": (body, stamp, ""),
        "v0= and nothing": (body, stamp, "v0="),
        "another scheme": (body, stamp, _sig(SECRET, stamp, body, scheme="v1")),
        "upper-case hex": (body, stamp, good.upper().replace("V0=", "v0=")),
        "a digit short": (body, stamp, good[:-1]),
        "a digit long": (body, stamp, good + "0"),
        "a non-ASCII byte in the signature": (body, stamp, good[:-1] + "\xff"),
        "a non-ASCII timestamp": (body, stamp + "\xe9", good),
        "a timestamp that is not a number": (body, "yesterday", _sig(SECRET, "yesterday", body)),
        "a timestamp with a fraction": (body, f"{now}.5", _sig(SECRET, f"{now}.5", body)),
        "a negative timestamp": (body, f"-{now}", _sig(SECRET, f"-{now}", body)),
        "signed at one time, sent with another": (body, str(now - 1), good),
        "the body changed after signing": (body + b"&x=1", stamp, good),
        "the signature of another body": (body, stamp, _sig(SECRET, stamp, b"payload=%7B%7D")),
    }
    sent, timestamp, signature = variants[name]
    headers = dict(FORM)
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    return sent, headers


ACCEPTED = ("Slack's own signature", "skew -299 s", "skew +299 s")
REFUSED = ("skew -301 s", "skew +301 s", "another secret", "no signature", "no timestamp", "neither header",
           "an empty signature", "v0= and nothing", "another scheme", "upper-case hex", "a digit short",
           "a digit long", "a non-ASCII byte in the signature", "a non-ASCII timestamp",
           "a timestamp that is not a number", "a timestamp with a fraction", "a negative timestamp",
           "signed at one time, sent with another", "the body changed after signing",
           "the signature of another body")  # fmt: skip


@pytest.mark.parametrize("name", ACCEPTED + REFUSED)
def test_signature_variants(world, client, name):
    cloud_run, _, card = world
    before = len(recorded(cloud_run))
    body, headers = _variant(name, ack(card))
    answer = client.post("/", data=body, headers=headers)
    if name in ACCEPTED:
        assert answer.status_code == 200
        assert len(recorded(cloud_run)) == before + 1
    else:
        assert (answer.status_code, answer.get_json()) == (401, {"error": "invalid signature"})
        assert len(recorded(cloud_run)) == before


def test_a_replay_within_five_minutes_is_handled_once(world, client):
    cloud_run, _, card = world
    before = len(recorded(cloud_run))
    body = ack(card, action_ts="1700000123.000001")
    headers = {**FORM, **signed(SECRET, body)}
    assert [client.post("/", data=body, headers=headers).status_code for _ in range(3)] == [200, 200, 200]
    assert len(recorded(cloud_run)) == before + 1


FRESH = st.integers(-400, 400).map(lambda skew: str(int(time.time()) + skew))  # timestamps the window may accept
SIGNATURES = (
    st.none()
    | LATIN1
    | LATIN1.map(lambda text: "v0=" + text)
    | st.text("0123456789abcdef\xff", min_size=64, max_size=64).map(lambda h: "v0=" + h)
)


@FAST
@given(timestamp=st.none() | LATIN1 | FRESH, signature=SIGNATURES, body=st.binary(max_size=300))
def test_any_unsigned_request_is_401_never_5xx(world, client, timestamp, signature, body):
    headers = dict(FORM)
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    assert client.post("/", data=body, headers=headers).status_code == 401


def _signed_post(client, body: bytes):
    return client.post("/", data=body, headers={**FORM, **signed(SECRET, body)})


@FAST
@given(body=st.binary(max_size=300) | LATIN1.map(lambda t: t.encode("latin-1")))
def test_any_signed_body_is_answered_400_or_ignored_never_5xx(client, body):
    answer = _signed_post(client, body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:  # slack-sdk verifies only text bodies (Slack's are URL-encoded ASCII): not Slack's
        assert answer.status_code == 401
        return
    assert answer.status_code in (200, 400)


@FAST
@given(payload=JSON)
def test_a_signed_payload_of_any_json_is_answered_without_5xx(client, payload):
    answer = _signed_post(client, urlencode({"payload": json.dumps(payload)}).encode())
    if not isinstance(payload, dict) or not isinstance(payload.get("type", ""), str | None):
        assert answer.status_code == 400
    else:  # another kind of interaction: acknowledged, ignored
        assert answer.status_code == 200


def _paths(value, prefix=()):
    """Every path into a JSON value (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@FAST
@given(data=st.data(), replacement=JSON)
def test_a_signed_click_with_any_field_of_the_wrong_type_is_answered_without_5xx(world, client, data, replacement):
    _, _, card = world
    payload = copy.deepcopy(block_actions(card, "acknowledge", APPROVER, TEAM))  # it shares the card's blocks
    paths = [p for p in _paths(payload) if p]
    path = data.draw(st.sampled_from(paths))
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    answer = _signed_post(client, urlencode({"payload": json.dumps(payload)}).encode())
    assert answer.status_code in (200, 400)


MALFORMED = {
    "JSON, not a form": (json.dumps({"payload": {}}).encode(), "malformed payload"),
    "a form without payload": (b"text=hello", "malformed payload"),
    "two payloads": (b"payload=%7B%7D&payload=%7B%7D", "malformed payload"),
    "payload not JSON": (b"payload=%7Bnot", "malformed payload"),
    "payload a JSON list": (b"payload=%5B1%5D", "malformed payload"),
    "payload nested 30,000 deep": (urlencode({"payload": "[" * 30000}).encode(), "malformed payload"),
    "actions not a list": (
        urlencode({"payload": json.dumps({"type": "block_actions", "actions": 5})}).encode(),
        "malformed payload",
    ),
    "a non-ASCII character in the form": ("payload=é".encode(), "malformed payload"),
}


@pytest.mark.parametrize(("body", "error"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_payload_of_the_wrong_shape_is_400(client, body, error):
    answer = _signed_post(client, body)
    assert (answer.status_code, answer.get_json()) == (400, {"error": error})


def test_another_slack_interaction_is_acknowledged_and_ignored(client):
    answer = _signed_post(client, urlencode({"payload": json.dumps({"type": "view_submission"})}).encode())
    assert (answer.status_code, answer.get_data()) == (200, b"")
