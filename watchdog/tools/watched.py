"""Reading what ``status`` and ``doctor`` show: the watched services, each read once and assessed.

The I/O half of ``status``: the Cloud Run client and the clock come in here; the
assessment itself is pure (watchdog/core/status.py).

Which services are watched is the deployed function's business, not the operator's
shell's: :func:`deployed` reads the function (Cloud Functions v2 REST ``GET
projects/P/locations/R/functions/F``, through google-auth's AuthorizedSession) for
its ``WATCHDOG_SERVICES`` and the service account it runs as.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.config import Config, ServiceRef
from watchdog.core.status import Status, assess
from watchdog.core.traffic import short_name

FUNCTIONS_API = "https://cloudfunctions.googleapis.com"


@dataclass(frozen=True)
class Deployed:
    """What the deployed alert function says about itself."""

    name: str  # projects/P/locations/R/functions/F
    services: str  # its WATCHDOG_SERVICES ("" when it has none)
    service_account: str  # serviceConfig.serviceAccountEmail


class Unreadable(Exception):
    """The deployed function could not be read; the message says why, in one line."""


def deployed(project: str, region: str, function: str, endpoint: str = "", timeout: float = 15.0) -> Deployed:
    """The deployed function's watched services and service account (:class:`Unreadable` when it cannot be read).

    ``endpoint``: the Cloud Functions API base URL (``CLOUD_FUNCTIONS_API_ENDPOINT``); an ``http://`` one is a
    local stand-in, called without credentials.
    """
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import AuthorizedSession

    from watchdog.tools import reach

    name = f"projects/{project}/locations/{region}/functions/{function}"
    down = reach.unreachable("Cloud Functions API", endpoint, FUNCTIONS_API, min(timeout, reach.CONNECT_TIMEOUT))
    if down:
        raise Unreadable(down)
    try:
        if endpoint.startswith("http://"):
            credentials: Any = AnonymousCredentials()
        else:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        response = AuthorizedSession(credentials).get(f"{(endpoint or FUNCTIONS_API).rstrip('/')}/v2/{name}",
                                                      timeout=timeout)  # fmt: skip
    except (GoogleAuthError, OSError) as error:
        raise Unreadable(f"{type(error).__name__}: {reach.one_line(error)}") from None
    if response.status_code >= 400:
        try:
            detail = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        raise Unreadable(f"HTTP {response.status_code}: {' '.join(str(detail).split())}")
    try:
        config = response.json().get("serviceConfig") or {}
        services = str((config.get("environmentVariables") or {}).get("WATCHDOG_SERVICES") or "").strip()
        account = str(config.get("serviceAccountEmail") or "").strip()
    except (ValueError, AttributeError):
        raise Unreadable("the answer is not a Cloud Functions Function") from None
    return Deployed(name, services, account)


def watched(config: Config, cloud_run: Any, project: str, region: str, deadline: float) -> list[ServiceRef | Status]:
    """The services in WATCHDOG_SERVICES; entries that name no project or region take --project/--region,
    ``*`` lists the services of --project in --region. An entry that cannot be located is a Status
    that could not be read."""
    found: list[ServiceRef | Status] = []
    if config.services.everything:
        if not (project and region):
            found.append(Status("*", readable=False, error="WATCHDOG_SERVICES is '*': give --project and --region"))
        else:
            for item in cloud_run.list_services(project, region, deadline):
                found.append(ServiceRef(project, region, short_name(item.get("name", ""))))
    for entry in config.services.entries:
        parts = {1: (project, region, *entry), 2: (project, *entry)}.get(len(entry), entry)
        if not all(parts):
            missing = "--project and --region" if len(entry) == 1 else "--project"
            found.append(Status("/".join(entry), readable=False, error=f"give {missing} to locate it"))
        else:
            found.append(ServiceRef(*parts))
    unique: dict[str, ServiceRef | Status] = {}
    for item in found:
        unique.setdefault(str(item) if isinstance(item, ServiceRef) else item.service, item)
    return list(unique.values())


def gather(
    config: Config,
    cloud_run: Any,
    *,
    project: str = "",
    region: str = "",
    only: str = "",
    timeout: float = 15.0,
    now: Callable[[], float] = time.time,
    progress: Callable[[str], None] = lambda _text: None,
) -> list[Status]:
    """Read and assess every watched service (or the one ``only`` names: SERVICE or PROJECT/REGION/SERVICE)."""
    deadline = time.monotonic() + timeout
    try:
        targets = watched(config, cloud_run, project, region, deadline)
    except Exception as error:  # noqa: BLE001 - the listing failed: nothing can be shown
        return [Status("*", readable=False, error=f"could not list services: {type(error).__name__}: {error}")]
    if only:
        targets = [t for t in targets if only in (str(t), getattr(t, "service", None))]
        if not targets:
            return [Status(only, readable=False, error="not a watched service (WATCHDOG_SERVICES)")]
    statuses = []
    for target in targets:
        if isinstance(target, Status):
            statuses.append(target)
            continue
        progress(f"reading {target}")
        try:
            service, history = cloud_run.read(target, deadline)
        except Exception as error:  # noqa: BLE001 - any failure to read is "could not read"
            statuses.append(Status(str(target), readable=False, error=f"{type(error).__name__}: {error}"[:300]))
            continue
        statuses.append(assess(target, service, history.loaded, config, now()))
    return statuses
