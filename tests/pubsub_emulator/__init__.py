"""Google's Pub/Sub fake (pstest) built from Debian packages, plus a Python launcher.

Build with ``tests/pubsub_emulator/build.sh`` (CI's ``.ci/run`` does this first); use
:class:`tests.pubsub_emulator.server.PubSubEmulator` from tests.
"""

from tests.pubsub_emulator.server import BINARY, PubSubEmulator

__all__ = ["BINARY", "PubSubEmulator"]
