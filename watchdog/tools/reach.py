"""Is an API endpoint reachable at all? Asked before the first call, so that an unreachable one fails in seconds.

The clients retry a refused connection as transient until the command's whole
deadline has passed (30 s for a read, 90 s for a publish), and then report a
RetryError with every attempt in it. A TCP connect to the endpoint (or to the
proxy the client would go through), bounded by :data:`CONNECT_TIMEOUT`, tells
"nothing listens there" apart from "slow" in well under that, with a one-line
reason. Once it connects, the clients' own deadlines and retries apply as before.
"""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 3.0

# the endpoints the clients use when none is configured
CLOUD_RUN = "https://run.googleapis.com"
MONITORING = "monitoring.googleapis.com:443"
PUBSUB = "pubsub.googleapis.com:443"


def address(endpoint: str, default: str) -> tuple[str, int, bool]:
    """(host, port, plaintext) of an endpoint given as a URL or as host:port (gRPC style)."""
    text = (endpoint or default).strip()
    if "://" not in text:
        text = ("http://" if endpoint else "https://") + text  # a configured host:port is a plaintext stand-in
    parts = urlsplit(text)
    plaintext = parts.scheme == "http"
    return parts.hostname or "", parts.port or (80 if plaintext else 443), plaintext


def _proxy(host: str, plaintext: bool) -> tuple[str, int] | None:
    """The proxy the clients would connect to instead (requests and gRPC read the same variables)."""
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    url = proxies.get("http" if plaintext else "https") or proxies.get("grpc") or ""
    if not url:
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    return (parts.hostname or "", parts.port or 80) if parts.hostname else None


def unreachable(what: str, endpoint: str, default: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """Why ``what`` cannot be reached at ``endpoint`` (or ``default``), in one line; "" when a connection opens."""
    host, port, _ = address(endpoint, default)
    reason = cannot_connect(endpoint, default, timeout)
    return f"{what} at {host}:{port} is unreachable: {reason}" if reason else ""


def cannot_connect(endpoint: str, default: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """Why no TCP connection opens to the endpoint (or the proxy in between); "" when one does."""
    host, port, plaintext = address(endpoint, default)
    via = _proxy(host, plaintext)
    target = via or (host, port)
    through = f" (through the proxy {via[0]}:{via[1]})" if via else ""
    try:
        with socket.create_connection(target, timeout=timeout):
            return ""
    except socket.gaierror:
        return f"cannot resolve {target[0]}{through}"
    except TimeoutError:
        return f"no answer to a connection within {timeout:g} s{through}"
    except ConnectionRefusedError:
        return f"connection refused{through}"
    except OSError as error:
        return f"{error.strerror or type(error).__name__}{through}"


def one_line(error: BaseException | str, limit: int = 240) -> str:
    """An API error as one short line: a RetryError by its last cause, a refused connection by its reason."""
    from google.api_core import exceptions

    if isinstance(error, exceptions.RetryError):
        cause = error.cause
        return "no answer in time" + (f" (last error: {one_line(cause, limit)})" if cause is not None else "")
    text = str(error)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "cannot resolve the host"),
        ("Temporary failure in name resolution", "cannot resolve the host"),
        ("timed out", "timed out"),
    ):
        if marker in text:
            return reason
    text = " ".join(f"{type(error).__name__}: {getattr(error, 'message', None) or text}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
