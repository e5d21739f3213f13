"""``make playground``: the staging incident's stand-ins, running, for trying every command by hand.

On loopback: the Cloud Run stand-in seeded with the incident (auth and backend
serving their ``all-traffic`` revisions), the Slack stand-in (each message is
printed here as it arrives), the Monitoring stand-in (the incident's alert
policies and the watchdog's channel), the IAM stand-in (for ``doctor``), the
pstest Pub/Sub fake with the watchdog's topic, and the real functions-framework
server running ``main.handle_alert``. pstest does not push, so a small Eventarc
(tests/eventarc_bridge.py) pulls the topic's subscription and delivers each
message to the function as a CloudEvent, as the Eventarc trigger does in
production: ``drill`` goes end to end and its card lands in Slack.

It prints the ``export`` lines to paste (``--env-file PATH`` also writes them
for ``source``), then a few commands to try, and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import tempfile
import threading
from pathlib import Path

from google.cloud import pubsub_v1

from tests.eventarc_bridge import Attempt, EventarcBridge
from tests.incident import PROJECT, REGION, TOPIC, Incident, standins
from tests.pubsub_emulator.server import PubSubEmulator
from tests.standins.iam import IamStandIn
from tests.support import PYTHON, FunctionProcess, free_port

SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/eventarc-{REGION}-watchdog-sub"
# Fixed ports, so the exports stay right across restarts; one in use falls back to a free port.
PORTS = {"cloud_run": 8781, "slack": 8782, "monitoring": 8783, "iam": 8784, "pubsub": 8785, "function": 8786}
EXAMPLES = """\
  rollback-watchdog explain --alert tests/fixtures/alerts/incident_backend_startup_metric_threshold.json
  rollback-watchdog check --service netra-backend-staging        # exit 1: egress flipped to all-traffic
  rollback-watchdog status
  rollback-watchdog drill --service netra-backend-staging        # a dry run: a [DRILL] DRY RUN card
  rollback-watchdog drill --service netra-backend-staging --live # rolls back; the card is printed here
  rollback-watchdog status                                       # backend pinned to 00118-paz
  rollback-watchdog undo --service netra-backend-staging
  rollback-watchdog pause --service netra-auth-service --reason 'trying the playground'
  rollback-watchdog resume --service netra-auth-service
  rollback-watchdog doctor          # exit 2 here: pstest has no IAM API, so the topic's grant is unchecked"""


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


def exports(world: Incident, iam: IamStandIn, pubsub: PubSubEmulator) -> dict[str, str]:
    """Every variable a command reads: the function's own settings, and what the tools add."""
    return {
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        "CLOUDSDK_RUN_REGION": REGION,
        **world.env(),
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "WATCHDOG_TOPIC": TOPIC,
        "IAM_API_ENDPOINT": iam.url,
    }


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


def reporter(function: FunctionProcess):
    """After each delivery: what Pub/Sub delivered, and what the watchdog decided (its log lines)."""
    seen = [0]

    def told(attempt: Attempt) -> None:
        kind = ",".join(f"{k}={v}" for k, v in attempt.attributes.items()) or "alert"
        say(f"Pub/Sub → function: message {attempt.message_id} ({kind}) → HTTP {attempt.status}"
            + ("" if attempt.acked else ": not acknowledged, redelivered"))  # fmt: skip
        lines = function.logs()
        for line in lines[seen[0] :]:
            if line.get("decision"):
                say(f"  watchdog [{line.get('severity')}] {line.get('message')}")
        seen[0] = len(lines)

    return told


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.playground", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="also write the export lines to this file, for `source`")
    parser.add_argument("--free-ports", action="store_true", help="any free ports, not the fixed ones")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ports = {name: 0 if args.free_ports else port(fixed) for name, fixed in PORTS.items()}
    log = Path(tempfile.mkdtemp(prefix="watchdog-playground-")) / "function.log"
    with (
        standins(ports["cloud_run"], ports["slack"], ports["monitoring"], echo=True) as world,
        IamStandIn(world.cloud_run.state, ports["iam"]) as iam,
        PubSubEmulator(ports["pubsub"]) as pubsub,
    ):
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
        subscriber = topic_and_subscription()
        with FunctionProcess(world.env(), log_path=log, port=ports["function"]) as function:
            bridge = EventarcBridge(subscriber, SUBSCRIPTION, function.url)
            delivering = threading.Thread(target=bridge.serve, args=(stop, reporter(function)), daemon=True)
            delivering.start()
            names = exports(world, iam, pubsub)
            moved = [f"{name} {fixed}" for name, fixed in PORTS.items() if ports[name] not in (fixed, 0)]
            say("Rollback watchdog playground: the staging incident (egress private-ranges-only → all-traffic)")
            say(f"Ports: {'free ones (--free-ports)' if args.free_ports else 'fixed, 8781-8786'}"
                + (f"; in use, so a free one instead of: {', '.join(moved)}" if moved else ""))  # fmt: skip
            say(f"Function: {function.url} (main.handle_alert; log: {log})")
            say(f"Pub/Sub: {pubsub.host}, topic {TOPIC} → subscription → function, as Eventarc delivers")
            say("\nPaste into another shell (from the repository root):\n")
            say(export_lines(names))
            say("Then try (rollback-watchdog is .venv/bin/python -m watchdog):\n")
            say(EXAMPLES)
            say(f"\nSlack messages appear below; all of them: curl -s {world.slack.url}/_control/messages")
            say(f"Cloud Run as it stands: curl -s {world.cloud_run.url}/_control/state")
            if args.env_file:
                write_atomically(args.env_file, export_lines(names))
                say(f"Exports also written to {args.env_file} (source it)")
            say("Ctrl-C stops everything.\n")
            stop.wait()
            say("\nStopping …")
            delivering.join(15)
        subscriber.close()
    say("Playground stopped.")


if __name__ == "__main__":
    main()
