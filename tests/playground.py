"""``make playground``: the staging incident's stand-ins, running, for trying every command by hand.

On loopback: the Cloud Run stand-in seeded with the incident (auth and backend
serving their ``all-traffic`` revisions), the Slack stand-in (each message is
printed here as it arrives), the Monitoring stand-in (the incident's alert
policies and the watchdog's channel), the IAM stand-in (for ``doctor``), the
watchdog's topic, and the real functions-framework server running
``main.handle_alert``. Every message published to the topic (``drill``'s, the
ticks', a deploy event or an alert anyone publishes) reaches the function in one
of two ways, chosen on start and said then:

* **Pub/Sub** (where ``build/pstest`` runs: ``make playground`` builds it where it
  can, with Go and Debian's golang-google-cloud-dev from apt, as root the first
  time): Google's pstest fake holds the topic and a subscription; pstest does not
  push, so a small Eventarc (tests/eventarc_bridge.py) pulls the subscription and
  delivers each message to the function as a CloudEvent, as the Eventarc trigger
  does; a refused delivery is redelivered a second later, without end;
* **HTTP** (without pstest, or with ``--no-pubsub`` / ``PLAYGROUND_NO_PUBSUB=1``):
  the playground serves the topic itself (tests/push_topic.py: Publish and
  GetTopic on the same port, so ``drill`` and ``doctor`` work unchanged) and POSTs
  each message to the function as terraform's push subscription does, a push
  body with the attributes; a refused delivery is retried after 1, 2, 4 … 60 s,
  ten times at most, then dead-lettered to a file. Needs nothing but ``.venv``.

Two more pieces make the card's life complete:

* a second functions-framework server runs ``main.slack_actions``, the card's
  interactivity Request URL, with the Slack stand-in's signing secret;
  ``python -m tests.playground click undo|pause|ack`` clicks a button of the
  newest card as Slack would (tests/standins/slack.py ``click``): a signed,
  form-encoded ``block_actions`` POST, as the on-call approver ``U0ONCALL``;
* the verification tick Cloud Scheduler publishes each minute (terraform/verify.tf)
  is published every ``--tick-seconds`` (15), with a short quiet time
  (``WATCHDOG_VERIFY_MINUTES=0.5``), so a rollback becomes "recovered" on the card
  and in ``status``. The watchdog reads Monitoring only up to 180 s back
  (watchdog/core/verification.py ``INGEST_DELAY``), so that is about 3½ minutes
  after the rollback; ``python -m tests.playground fast-forward`` moves the
  rollbacks under verification that far into the past instead, as ``make demo`` does.

It prints the ``export`` lines to paste (``--env-file PATH`` also writes them
for ``source``), then a few commands to try, and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from google.cloud import pubsub_v1

from tests.eventarc_bridge import Attempt, EventarcBridge
from tests.incident import ACTIONS, PROJECT, REGION, TOPIC, Incident, standins
from tests.pubsub_emulator.server import BINARY, PubSubEmulator
from tests.push_topic import MAX_ATTEMPTS, RETRY, PushTopic
from tests.standins.functions import FunctionsStandIn, as_deployed
from tests.standins.iam import FN, IamStandIn
from tests.standins.slack import print_message, user
from tests.support import PYTHON, ROOT, FunctionProcess, free_port, post
from watchdog.core import actions as card_actions
from watchdog.core.intake import TICK_ATTRIBUTE
from watchdog.core.verification import INGEST_DELAY

SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/eventarc-{REGION}-watchdog-sub"  # the Pub/Sub mode's, pulled
PUSH_SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/rollback-watchdog-alerts-push"  # terraform/pubsub.tf's name
PUBSUB, HTTP = "Pub/Sub", "HTTP"  # the two ways a message reaches the function
NO_PUBSUB = "PLAYGROUND_NO_PUBSUB"  # set, and not 0: the HTTP mode (and make playground does not build pstest)
SERVICES = ("netra-auth-service", "netra-backend-staging")
# Fixed ports, so the exports stay right across restarts; one in use falls back to a free port.
PORTS = {"cloud_run": 8781, "slack": 8782, "monitoring": 8783, "iam": 8784, "pubsub": 8785, "function": 8786,
         "actions": 8787, "functions_api": 8788}  # fmt: skip
TICK_SECONDS = 15.0  # Cloud Scheduler's tick comes every minute (terraform/verify.tf); here more often
VERIFY_MINUTES = "0.5"  # the quiet time before a rollback is called recovered (10 by default)
APPROVER, VISITOR = "U0ONCALL", "U0VISITOR"  # in WATCHDOG_SLACK_APPROVERS, and not
BUTTONS = {"undo": card_actions.UNDO, "pause": card_actions.PAUSE, "ack": card_actions.ACK}
EXAMPLES = """\
  rollback-watchdog explain --alert tests/fixtures/alerts/incident_backend_startup_metric_threshold.json
  rollback-watchdog check --service netra-backend-staging        # exit 1: egress flipped to all-traffic
  rollback-watchdog status
  rollback-watchdog drill --service netra-backend-staging        # a dry run: a [DRILL] DRY RUN card
  rollback-watchdog drill --service netra-backend-staging --live # rolls back; the card is printed here
  rollback-watchdog status                                       # backend pinned to 00118-paz, verifying
  python -m tests.playground fast-forward   # or wait ~{due}: the next tick calls it recovered, card and all
  rollback-watchdog status                                       # backend: recovered
  python -m tests.playground click undo     # the card's "Undo rollback", clicked by U0ONCALL (an approver)
  rollback-watchdog status                                       # backend unpinned: 00119-qor serves again
  rollback-watchdog drill --service netra-auth-service --live
  python -m tests.playground click pause --user U0VISITOR        # refused: not an approver, nothing changes
  rollback-watchdog undo --service netra-auth-service            # the same undo, from the command line
  rollback-watchdog pause --service netra-auth-service --reason 'trying the playground'
  rollback-watchdog resume --service netra-auth-service
  rollback-watchdog doctor          # exit 2 here: the topic's grant and the function's rights stay unchecked"""


def say(text: str = "") -> None:
    print(text, flush=True)


def port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def forced_http(environ: dict[str, str]) -> bool:
    """``PLAYGROUND_NO_PUBSUB`` set, to anything but 0 (as the Makefile reads it: then it does not build pstest)."""
    return environ.get(NO_PUBSUB, "") not in ("", "0")


def delivery_mode(no_pubsub: bool, binary: Path = BINARY) -> tuple[str, str]:
    """How messages reach the function (PUBSUB or HTTP), and why; the Pub/Sub mode may still fall back when pstest
    does not start (:func:`serve`)."""
    if no_pubsub:
        return HTTP, f"asked for (--no-pubsub or {NO_PUBSUB})"
    if not binary.is_file():
        return HTTP, (f"{binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary} is not built: it needs"
                      " Go and Debian's golang-google-cloud-dev (apt, as root the first time; make playground tries)")  # fmt: skip
    return PUBSUB, f"{binary.name} runs here"


def start_pstest(running: ExitStack, port: int, binary: Path = BINARY) -> tuple[PubSubEmulator | None, str]:
    """pstest, running until ``running`` closes; or None and why it did not start (the HTTP mode then)."""
    try:
        return running.enter_context(PubSubEmulator(port, binary=binary)), ""
    except (OSError, RuntimeError) as error:  # not executable here (built for another machine), or it failed
        return None, f"{binary.name} did not start ({type(error).__name__}: {error})"


def exports(world: Incident, iam: IamStandIn, functions: FunctionsStandIn, pubsub_host: str) -> dict[str, str]:
    """Every variable a command reads: the function's own settings, and what the tools add. Every endpoint is a
    stand-in on loopback: a command run with them reaches nothing real, whatever credentials the shell has."""
    return {
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        "CLOUDSDK_RUN_REGION": REGION,
        **function_env(world),
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "WATCHDOG_TOPIC": TOPIC,
        "IAM_API_ENDPOINT": iam.url,
        "CLOUD_FUNCTIONS_API_ENDPOINT": functions.url,  # doctor reads the deployed function's service account
    }


def function_env(world: Incident) -> dict[str, str]:
    """Both functions' settings: the incident's, with a short quiet time so a verdict comes in minutes."""
    return {**world.env(), "WATCHDOG_VERIFY_MINUTES": VERIFY_MINUTES}


def verdict_due(minutes: str = VERIFY_MINUTES) -> float:
    """Seconds from a rollback to the earliest tick that can call it recovered: ingest delay + quiet time."""
    return INGEST_DELAY + float(minutes) * 60


def export_lines(names: dict[str, str]) -> str:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in names.items()]
    lines.append(f'export PATH={shlex.quote(str(Path(PYTHON).parent))}:"$PATH"')  # rollback-watchdog, unactivated
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Whoever waits for the file sees all of it or nothing."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def topic_and_subscription() -> pubsub_v1.SubscriberClient:
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    publisher.create_topic(name=TOPIC)
    subscriber.create_subscription(name=SUBSCRIPTION, topic=TOPIC, ack_deadline_seconds=60)
    publisher.transport.close()
    return subscriber


class Decisions:
    """A function's structured log, read on: the lines with a ``decision`` since the last call."""

    def __init__(self, function: FunctionProcess) -> None:
        self.function = function
        self.seen = 0

    def new(self) -> list[dict]:
        lines = self.function.logs()
        fresh, self.seen = lines[self.seen :], len(lines)
        return [line for line in fresh if line.get("decision")]


def shown(line: dict) -> str:
    return f"  watchdog [{line.get('severity')}] {line.get('message')}"


def reporter(function: FunctionProcess, via: str = "Pub/Sub → function"):
    """After each delivery: what was delivered (``via``), and what the watchdog decided (its log lines).

    A tick with nothing to verify is not shown, nor a tick that decided what the one before did (a
    rollback waiting for its quiet time is shown once, with the time its verdict is due)."""
    decisions, last_tick = Decisions(function), [()]

    def told(attempt: Attempt) -> None:
        lines = decisions.new()
        if TICK_ATTRIBUTE in attempt.attributes and attempt.acked:
            lines = [line for line in lines if line.get("reason") != "nothing_to_verify"]
            same = tuple((line.get("decision"), line.get("reason"), line.get("incident_id")) for line in lines)
            if not lines or same == last_tick[0]:
                return
            last_tick[0] = same
        kind = ",".join(f"{k}={v}" for k, v in attempt.attributes.items()) or "no attributes"
        which = f", attempt {attempt.delivery_attempt}" if attempt.delivery_attempt > 1 else ""
        answer = f"HTTP {attempt.status}" if attempt.status else "no answer"
        say(f"{via}: message {attempt.message_id} ({kind}{which}) → {answer}"
            + ("" if attempt.acked else f": not acknowledged, {attempt.then}"))  # fmt: skip
        for line in lines:
            say(shown(line))

    return told


def click_reporter(function: FunctionProcess):
    """After each click the Slack stand-in delivered: who clicked what, the answer, the function's decision."""
    decisions = Decisions(function)

    def told(answer: dict) -> None:
        say(f"Slack → slack_actions: {answer['user']} clicked {answer['action']} on card {answer['card']['ts']}"
            f" → HTTP {answer['status']} in {answer['seconds']} s")  # fmt: skip
        for line in decisions.new():
            say(shown(line))
        for text in answer["told"]:
            say(f"  told {answer['user']} (only them): {text}")

    return told


def restored_probes(world: Incident, seeded: set[tuple[str, int]], now: float) -> None:
    """After a rollback the restored revision's instances pass their startup probes: the evidence real Cloud Run
    gives Monitoring (verification calls nothing recovered without it). One healthy point every 10 s per open
    rollback, stamped as Monitoring shows it: just past the ingest delay, so the first is read ~3 min after the
    rollback, before verification would call it "no traffic". Stamped from the clock, not from the rollback's
    time, so a fast-forward (which moves the rollback back) finds the points inside its window whichever tick
    reads it, even one seeded before the move."""
    from watchdog.core import ledger
    from watchdog.core.verification import INGEST_DELAY

    with world.cloud_run.state.lock:
        services = {
            name: dict(service.get("annotations") or {}) for name, service in world.cloud_run.state.services.items()
        }
    for name, written in services.items():
        for record in ledger.records(written):
            if record.state or (record.incident, int(now // 10)) in seeded:
                continue
            seeded.add((record.incident, int(now // 10)))
            service = name.rsplit("/", 1)[-1]
            where = {"project_id": PROJECT, "service_name": service, "location": REGION,
                     "revision_name": record.restored, "configuration_name": service}  # fmt: skip
            world.monitoring.store.counts("run.googleapis.com/container/completed_probe_count", where,
                                          [(now - INGEST_DELAY - 5, 2)], is_healthy="true",
                                          probe_type="Startup")  # fmt: skip


def seeding(stop: threading.Event, world: Incident) -> None:
    """The restored revisions' probe evidence, kept up twice a second (apart from the ticks, so no tick reads a
    rollback the evidence has not caught up with)."""
    seeded: set[tuple[str, int]] = set()
    while not stop.wait(0.5):
        restored_probes(world, seeded, time.time())


def ticking(stop: threading.Event, every: float) -> None:
    """Cloud Scheduler's job (terraform/verify.tf): the tick message published to the topic, every ``every`` s."""
    publisher = pubsub_v1.PublisherClient()
    try:
        while not stop.wait(every):
            try:
                publisher.publish(TOPIC, b"tick", **{TICK_ATTRIBUTE: "1"}).result(timeout=10)
            except Exception as error:  # a missed tick is not retried: the next one comes
                if not stop.is_set():
                    say(f"tick not published: {type(error).__name__}: {error}")
    finally:
        publisher.transport.close()


def delivery_lines(mode: str, why: str, host: str, dead_letters: Path) -> list[str]:
    """What the start says about the way messages reach the function, and, in the HTTP mode, what differs."""
    if mode == PUBSUB:
        return [f"Delivery: Pub/Sub, pstest at {host} ({why}): topic {TOPIC} → subscription → function, as Eventarc"
                " delivers (a CloudEvent); a refused delivery is redelivered a second later, without end (pstest"
                " has no dead-letter policy)"]  # fmt: skip
    low, high = RETRY
    return [
        f"Delivery: HTTP, without Pub/Sub: {why}. The playground serves the topic {TOPIC} itself at {host}"
        " (PUBSUB_EMULATOR_HOST; Publish and GetTopic only, so rollback-watchdog drill and doctor work as with"
        " Pub/Sub) and POSTs each message to the function as the push subscription does: a push body with the"
        " attributes",
        "  What differs from the Pub/Sub mode: no other Pub/Sub call (no subscription to pull or look into);"
        " messages live in the playground's memory only; a refused delivery is retried after"
        f" {low:g}, {2 * low:g}, {4 * low:g} … {high:g} s, {MAX_ATTEMPTS} times at most, then dead-lettered to"
        f" {dead_letters} (the Pub/Sub mode redelivers it each second, without end)",
    ]


def serve(args: argparse.Namespace) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ports = {name: 0 if args.free_ports else port(fixed) for name, fixed in PORTS.items()}
    logs = Path(tempfile.mkdtemp(prefix="watchdog-playground-"))
    log, actions_log, dead_letters = logs / "function.log", logs / "slack_actions.log", logs / "dead-letters.jsonl"
    mode, why = delivery_mode(args.no_pubsub)
    with ExitStack() as running:  # closed in reverse: the delivery, the functions, then the stand-ins
        world = running.enter_context(standins(ports["cloud_run"], ports["slack"], ports["monitoring"], echo=True,
                                               symptoms=time.time()))  # fmt: skip
        iam = running.enter_context(IamStandIn(world.cloud_run.state, ports["iam"]))
        deployed = as_deployed(world.env()["WATCHDOG_SERVICES"], FN, PROJECT, REGION)  # as terraform deploys it
        functions = running.enter_context(FunctionsStandIn([deployed], ports["functions_api"]))
        emulator = None
        if mode == PUBSUB:
            emulator, failed = start_pstest(running, ports["pubsub"])
            if emulator is None:
                mode, why = HTTP, failed
        slack = world.slack.state
        team = ACTIONS["WATCHDOG_SLACK_TEAM"]
        slack.users.update({who: user(who, team=team) for who in (APPROVER, VISITOR)})
        function = running.enter_context(FunctionProcess(function_env(world), log_path=log, port=ports["function"]))
        buttons = running.enter_context(FunctionProcess(function_env(world), target="slack_actions", signature="http",
                                                        log_path=actions_log, port=ports["actions"]))  # fmt: skip
        slack.request_url, slack.signing_secret = buttons.url, ACTIONS["SLACK_SIGNING_SECRET"]
        slack.on_click = click_reporter(buttons)
        threads, topic = [], None
        if emulator is not None:
            host = emulator.host
            os.environ["PUBSUB_EMULATOR_HOST"] = host
            subscriber = topic_and_subscription()
            running.callback(subscriber.close)
            bridge = EventarcBridge(subscriber, SUBSCRIPTION, function.url)
            threads.append(threading.Thread(target=bridge.serve, args=(stop, reporter(function)), daemon=True))
        else:
            topic = running.enter_context(PushTopic(TOPIC, PUSH_SUBSCRIPTION, function.url, ports["pubsub"],
                                                    told=reporter(function, "push → function"),
                                                    dead_letters=dead_letters))  # fmt: skip
            host = topic.host
            os.environ["PUBSUB_EMULATOR_HOST"] = host  # the ticks publish through it too
        if args.tick_seconds > 0:
            threads.append(threading.Thread(target=ticking, args=(stop, args.tick_seconds), daemon=True))
            threads.append(threading.Thread(target=seeding, args=(stop, world), daemon=True))
        for thread in threads:
            thread.start()
        names = exports(world, iam, functions, host)
        moved = [f"{name} {fixed}" for name, fixed in PORTS.items() if ports[name] not in (fixed, 0)]
        due = f"{verdict_due() / 60:g} min"
        say("Rollback watchdog playground: the staging incident (egress private-ranges-only → all-traffic)")
        say(f"Ports: {'free ones (--free-ports)' if args.free_ports else 'fixed, 8781-8788'}"
            + (f"; in use, so a free one instead of: {', '.join(moved)}" if moved else ""))  # fmt: skip
        say(f"Function: {function.url} (main.handle_alert; log: {log})")
        say(f"Buttons: {buttons.url} (main.slack_actions, the card's Request URL; log: {actions_log})")
        say(f"  python -m tests.playground click undo|pause|ack: Slack's signed click on the newest card, as"
            f" {APPROVER} (an approver; --user {VISITOR} is refused)")  # fmt: skip
        for line in delivery_lines(mode, why, host, dead_letters):
            say(line)
        if args.tick_seconds > 0:
            say(f"Ticks: published every {args.tick_seconds:g} s, as Cloud Scheduler's each minute; quiet time"
                f" WATCHDOG_VERIFY_MINUTES={VERIFY_MINUTES}. Monitoring is read only up to"
                f" {INGEST_DELAY:g} s back, so a rollback is called recovered ~{due} after it"
                " (python -m tests.playground fast-forward: at the next tick)")  # fmt: skip
        else:
            say("Ticks: none (--tick-seconds 0): rollbacks stay verifying")
        say("\nPaste into another shell (from the repository root):\n")
        say(export_lines(names))
        say("Then try (rollback-watchdog is .venv/bin/python -m watchdog):\n")
        say(EXAMPLES.format(due=due))
        say(f"\nSlack messages appear below; all of them: curl -s {world.slack.url}/_control/messages")
        say(f"Cloud Run as it stands: curl -s {world.cloud_run.url}/_control/state")
        if args.env_file:
            write_atomically(args.env_file, export_lines(names))
            say(f"Exports also written to {args.env_file} (source it)")
        say("Ctrl-C stops everything.\n")
        stop.wait()
        say("\nStopping …")
        for thread in threads:
            thread.join(15)
        slack.on_click = None
        if topic is not None and (left := topic.undelivered()):
            say(f"{left} message(s) published and not yet delivered are dropped (they lived in this process)")
    say("Playground stopped.")


def endpoint(variable: str, name: str) -> str:
    """Where the playground's stand-in listens: from the pasted exports, else its fixed port."""
    return os.environ.get(variable, "").removesuffix("/").removesuffix("/api") or f"http://127.0.0.1:{PORTS[name]}"


def click(args: argparse.Namespace) -> int:
    """Ask the Slack stand-in to deliver a click, as Slack does; show the answer and the card. 0: done."""
    url = endpoint("SLACK_API_URL", "slack") + "/_control/click"
    asked = {"action": BUTTONS[args.button], "user": args.user, "ts": "" if args.card == "latest" else args.card}
    _status, text = post(url, json.dumps(asked).encode(), {"Content-Type": "application/json"})
    answer = json.loads(text)
    if not answer.get("ok"):
        say(f"not clicked: {answer.get('error')}")
        return 1
    late = " (too late: Slack gives up after 3 s)" if answer["seconds"] > 3 else ""
    say(f"{args.user} clicked {BUTTONS[args.button]} on card {answer['card']['ts']}: slack_actions answered"
        f" HTTP {answer['status']} in {answer['seconds']} s{late}")  # fmt: skip
    for reply in answer["told"]:
        say(f"Slack told {args.user} (only them): {reply}")
    if not answer["told"]:
        print_message(answer["card"], note="the card now")
    return 0 if answer["status"] == 200 and not answer["told"] else 1


def fast_forward(args: argparse.Namespace) -> int:
    """Move each rollback under verification ``--minutes`` into the past (its alert too), through the Cloud
    Run API: the next tick sees that much quiet time, as ``make demo`` does instead of waiting."""
    from dataclasses import replace

    from watchdog.config import ServiceRef
    from watchdog.core import ledger
    from watchdog.core.verification import under_verification
    from watchdog.edges.cloudrun import CloudRun

    cloud_run = CloudRun(endpoint("CLOUD_RUN_API_ENDPOINT", "cloud_run"))
    shift, moved = args.minutes * 60, 0
    for ref in (ServiceRef(PROJECT, REGION, name) for name in SERVICES):
        service = cloud_run.get_service(ref, time.monotonic() + 10)
        annotations = service.get("annotations") or {}
        now = time.time()
        open_ = [r for r in ledger.records(annotations) if under_verification(r, now)]
        for record in open_:
            alert_at = record.alert_at - shift if record.alert_at else record.alert_at
            annotations = ledger.with_record(annotations, replace(record, at=record.at - shift, alert_at=alert_at))
            say(f"{ref.service}: the rollback of {record.incident} is now {args.minutes:g} min old")
        if open_:
            cloud_run.annotate(ref, annotations, service.get("etag", ""), time.monotonic() + 10)
            moved += len(open_)
    if not moved:
        say("no rollback under verification: nothing to move")
    else:
        say("the next tick reads Monitoring over that time and gives the verdict")
    return 0


def arguments(argv: list[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.playground", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="also write the export lines to this file, for `source`")
    parser.add_argument("--free-ports", action="store_true", help="any free ports, not the fixed ones")
    parser.add_argument("--no-pubsub", action="store_true", default=forced_http(environ),
                        help=f"deliver over HTTP as the push subscription does, even where pstest runs ({NO_PUBSUB}=1"
                        " too)")  # fmt: skip
    parser.add_argument("--tick-seconds", type=float, default=TICK_SECONDS,
                        help=f"publish the verification tick this often ({TICK_SECONDS:g}; 0: never)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", title="commands, for a running playground (without one:"
                                     " start it)")  # fmt: skip
    clicking = commands.add_parser("click", help="click a button of the newest card, as Slack would")
    clicking.add_argument("button", choices=BUTTONS)
    clicking.add_argument("--user", default=APPROVER, help=f"who clicks ({APPROVER}: an approver)")
    clicking.add_argument("--card", default="latest", help="the card's ts (latest: the newest card with buttons)")
    forward = commands.add_parser("fast-forward", help="move rollbacks under verification into the past")
    enough = math.ceil(verdict_due(environ.get("WATCHDOG_VERIFY_MINUTES", VERIFY_MINUTES)) / 60)
    forward.add_argument("--minutes", type=float, default=enough, help=f"how far ({enough}: enough for a verdict)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv, dict(os.environ))
    if args.command == "click":
        sys.exit(click(args))
    if args.command == "fast-forward":
        sys.exit(fast_forward(args))
    serve(args)


if __name__ == "__main__":
    main()
