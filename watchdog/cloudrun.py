"""The Cloud Run Admin API v2, shaped for the watchdog: read, pin traffic, annotate.

Everything crosses this edge as plain dicts in the v2 REST JSON shape, so the
decision code and the JSON fixtures speak the same language as the API.
Transient failures (429, 5xx, timeouts, dropped connections) are retried in
process with ``google.api_core.retry`` inside the caller's time budget, then
raised so that Pub/Sub redelivers.

``CLOUD_RUN_API_ENDPOINT`` set to an ``http://`` URL selects the REST transport
with anonymous credentials (the local stand-in); unset, the real API with
default credentials.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.api_core import exceptions, retry
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from google.protobuf import field_mask_pb2, json_format

from watchdog.config import ServiceRef

PAGE_SIZE = 100  # the first page: usually all the decision needs
MORE_PAGE_SIZE = 1000  # AIP-158's usual maximum; read only when the decision needs older history

TRANSIENT = (
    exceptions.TooManyRequests,
    exceptions.InternalServerError,
    exceptions.BadGateway,
    exceptions.ServiceUnavailable,
    exceptions.GatewayTimeout,
    exceptions.DeadlineExceeded,
    OSError,  # requests' ConnectionError and Timeout are OSErrors
)


class ConcurrentChange(Exception):
    """The service changed between our read and our write (etag mismatch)."""


class UpdateFailed(Exception):
    """The update was accepted but its long-running operation ended in error."""


@dataclass
class RevisionHistory:
    """Revisions newest first, read page by page only as far as needed."""

    loaded: list[dict]
    _pages: Iterator | None

    @property
    def complete(self) -> bool:
        return self._pages is None

    def read_more(self) -> None:
        try:
            page = next(self._pages)  # type: ignore[arg-type]
        except StopIteration:
            self._pages = None
            return
        seen = {r.get("name") for r in self.loaded}
        self.loaded.extend(r for r in page.get("revisions", ()) if r.get("name") not in seen)
        if not page.get("nextPageToken"):
            self._pages = None


class CloudRun:
    def __init__(self, endpoint: str = "", *, call_timeout: float = 10.0) -> None:
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import AuthorizedSession

        if endpoint.startswith("http://"):
            credentials = AnonymousCredentials()  # a local stand-in
        else:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        options = {"api_endpoint": endpoint} if endpoint else None
        self._services = run_v2.ServicesClient(credentials=credentials, transport="rest", client_options=options)
        self._call_timeout = call_timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cloudrun")
        # Reads go to the REST API as JSON through google-auth's AuthorizedSession with the
        # client's credentials: the v2 REST JSON is the shape the watchdog works in, and the
        # client would parse it into protos only for us to turn them back into dicts (about
        # half a millisecond per revision, 100 revisions to a page). Writes, operations and
        # listings go through the client.
        self._session = AuthorizedSession(credentials)
        self._base = (endpoint or "https://run.googleapis.com").rstrip("/") + "/v2/"

    def _retry(self, deadline: float) -> retry.Retry:
        return retry.Retry(
            predicate=retry.if_exception_type(*TRANSIENT),
            initial=0.2,
            maximum=2.0,
            multiplier=2.0,
            timeout=max(0.5, deadline - time.monotonic()),
        )

    def _timeout(self, deadline: float) -> float:
        return max(0.5, min(self._call_timeout, deadline - time.monotonic()))

    def _get_json(self, path: str, params: dict, deadline: float) -> dict:
        """GET one v2 resource as REST JSON; errors map to the same api_core exceptions as the client's."""

        def call() -> dict:
            response = self._session.get(self._base + path, params=params, timeout=self._timeout(deadline))
            if response.status_code >= 400:
                raise exceptions.from_http_response(response)
            return response.json()

        return self._retry(deadline)(call)()

    def get_service(self, ref: ServiceRef, deadline: float) -> dict:
        return self._get_json(ref.name, {}, deadline)

    def get_revision(self, ref: ServiceRef, revision: str, deadline: float) -> dict:
        return self._get_json(f"{ref.name}/revisions/{revision}", {}, deadline)

    def read(self, ref: ServiceRef, deadline: float) -> tuple[dict, RevisionHistory]:
        """The service and the first page of its revisions, read concurrently (the service on this thread)."""
        history = self._pool.submit(self.history, ref, deadline)
        service = self.get_service(ref, deadline)
        return service, history.result()

    def history(self, ref: ServiceRef, deadline: float, page_size: int = PAGE_SIZE) -> RevisionHistory:
        history = RevisionHistory([], self._revision_pages(ref, deadline, page_size))
        history.read_more()
        return history

    def _revision_pages(self, ref: ServiceRef, deadline: float, page_size: int) -> Iterator[dict]:
        """Pages of revisions, newest first: a small first page, then, only if the decision needs older
        history, the listing again in pages of MORE_PAGE_SIZE (a page token is only valid with the
        parameters that produced it, AIP-158, so the bigger pages start a new listing; the history
        skips what it already has)."""
        # showDeleted: a deleted revision may be the one that made the change; the report says so
        params: dict = {"pageSize": page_size, "showDeleted": "true"}
        page = self._get_json(f"{ref.name}/revisions", params, deadline)
        yield page
        if page.get("nextPageToken") and page_size < MORE_PAGE_SIZE:
            params = {"pageSize": MORE_PAGE_SIZE, "showDeleted": "true"}
            page = self._get_json(f"{ref.name}/revisions", params, deadline)
            yield page
        while page.get("nextPageToken"):
            page = self._get_json(f"{ref.name}/revisions", {**params, "pageToken": page["nextPageToken"]}, deadline)
            yield page

    def list_services(self, project: str, region: str, deadline: float) -> list[dict]:
        pager = self._services.list_services(
            parent=f"projects/{project}/locations/{region}",
            retry=self._retry(deadline),
            timeout=self._timeout(deadline),
        )
        return [_to_dict(s) for s in pager]

    def pin_traffic(
        self, ref: ServiceRef, traffic: list[dict], etag: str, annotations: dict[str, str], deadline: float
    ) -> dict:
        """Replace the service's traffic with ``traffic`` and write ``annotations``, in one update.

        ``traffic`` is the complete v2 traffic list (``type``, ``revision``,
        ``percent``, ``tag``), tagged entries included: an update's traffic
        replaces the whole list. Only ``traffic`` and ``annotations`` are in the
        update mask, so no new revision is created; the etag makes a concurrent
        deploy fail the update (:class:`ConcurrentChange`) instead of being
        overwritten. Returns the service as the finished operation reports it.
        """
        service = run_v2.Service(
            name=ref.name,
            etag=etag,
            annotations=annotations,
            traffic=[
                run_v2.TrafficTarget(
                    type_=run_v2.TrafficTargetAllocationType[entry["type"]],
                    revision=entry.get("revision", ""),
                    percent=int(entry.get("percent", 0)),
                    tag=entry.get("tag", ""),
                )
                for entry in traffic
            ],
        )
        operation = self._update(service, ["traffic", "annotations"], deadline)
        try:
            result = operation.result(timeout=max(1.0, deadline - time.monotonic()), polling=_polling(deadline))
        except exceptions.GoogleAPICallError as error:
            if _from_operation(error):
                raise UpdateFailed(str(error)) from error
            raise  # polling itself failed (5xx, 404 …): the caller treats it as transient or permanent
        return _to_dict(result)

    def annotate(self, ref: ServiceRef, annotations: dict[str, str], etag: str, deadline: float) -> None:
        """Replace the service annotations (no revision is created). Does not wait."""
        self._update(run_v2.Service(name=ref.name, etag=etag, annotations=annotations), ["annotations"], deadline)

    def _update(self, service: run_v2.Service, paths: list[str], deadline: float):
        request = run_v2.UpdateServiceRequest(service=service, update_mask=field_mask_pb2.FieldMask(paths=paths))
        try:
            return self._services.update_service(
                request=request, retry=self._retry(deadline), timeout=self._timeout(deadline)
            )
        except (exceptions.Conflict, exceptions.FailedPrecondition) as error:
            raise ConcurrentChange(str(error)) from error
        except exceptions.BadRequest as error:
            if _rest_status(error) == "FAILED_PRECONDITION":
                raise ConcurrentChange(str(error)) from error
            raise


def _polling(deadline: float) -> retry.Retry:
    """Poll the operation quickly: a traffic-only update usually finishes in seconds."""
    return DEFAULT_POLLING.with_delay(initial=0.1, maximum=2.0, multiplier=1.5).with_timeout(
        max(1.0, deadline - time.monotonic())
    )


def _from_operation(error: exceptions.GoogleAPICallError) -> bool:
    """api_core raises the operation's own error with the Operation as ``response``; HTTP errors carry a
    requests.Response."""
    return type(getattr(error, "response", None)).__name__ == "Operation"


def _rest_status(error: exceptions.GoogleAPICallError) -> str:
    try:
        return str(error.response.json()["error"]["status"])  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - any shape of error body: no status
        return ""


def _to_dict(message) -> dict:
    return json_format.MessageToDict(type(message).pb(message))
