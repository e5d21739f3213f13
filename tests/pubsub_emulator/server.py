"""Start/stop the pstest Pub/Sub fake binary (``build/pstest``) for tests.

Why a real process instead of mocks: the watchdog's Pub/Sub behaviour (attributes,
ack deadlines, redelivery) is only trustworthy when exercised through the real
google-cloud-pubsub client against a server speaking the real gRPC API.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY = REPO_ROOT / "build" / "pstest"
_READY = re.compile(r"^listening on (127\.0\.0\.1:\d+)$")


class PubSubEmulator:
    """A running pstest process; use as a context manager or call start()/stop().

    ``port=0`` (default) lets the binary bind a kernel-chosen port and report it on its
    ready line, which avoids the pick-a-free-port-then-bind race between parallel tests.
    ``.host`` is the value for ``PUBSUB_EMULATOR_HOST``.
    """

    def __init__(self, port: int = 0, binary: Path = BINARY, timeout: float = 10.0) -> None:
        self.port = port
        self.binary = binary
        self.timeout = timeout
        self.host = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        """Launch the binary and block until its gRPC port accepts TCP connections.

        Raises (never skips) when the binary is missing: a silently skipped emulator
        suite would hide a broken build.sh in CI.
        """
        if not self.binary.is_file():
            raise FileNotFoundError(f"{self.binary} missing: run tests/pubsub_emulator/build.sh first")
        self._proc = subprocess.Popen(
            [str(self.binary), "-port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.host = self._read_ready_line(self._proc)
        host, port = self.host.rsplit(":", 1)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                break
            except OSError as exc:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"pstest at {self.host} never accepted connections") from exc
                time.sleep(0.05)
        return self

    def _read_ready_line(self, proc: subprocess.Popen[str]) -> str:
        """Return the address from the ``listening on HOST:PORT`` line, with a timeout."""
        assert proc.stdout is not None
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(proc.stdout.readline() if proc.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(self.timeout)
        match = _READY.match(found[0].strip()) if found else None
        if not match:
            self.stop()
            raise RuntimeError(f"pstest did not report readiness: {found!r}")
        return match.group(1)

    def env(self) -> dict[str, str]:
        """Environment for a child process that should talk to this emulator."""
        return {**os.environ, "PUBSUB_EMULATOR_HOST": self.host}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5s; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
