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

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.api_core import exceptions, retry
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from google.protobuf import field_mask_pb2, json_format

from watchdog.config import ServiceRef
from watchdog.core.intake import rfc3339

PAGE_SIZE = 100  # the first page: usually all the decision needs
MORE_PAGE_SIZE = 1000  # AIP-158's usual maximum; read only when the decision needs older history
SETTLE_MARGIN = 3.0  # seconds of the deadline kept for the report when waiting for reconciliation

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
    """Revisions newest first by ``createTime``, read page by page only as far as needed.

    ListRevisions documents no order. Cloud Run lists newest first, and reading only the
    pages a decision needs relies on that, so every page is checked: newest first within
    itself and no newer than what was read before. A page that is not makes the listing
    "unordered": every remaining page is read at once (a later page could hold a newer
    revision), and ``loaded`` is sorted by ``createTime`` whatever the API did.
    """

    loaded: list[dict]
    _pages: Iterator | None
    ordered: bool = True

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
        new = [r for r in page.get("revisions", ()) if r.get("name") not in seen]
        self.ordered = self.ordered and _newest_first(self.loaded[-1:] + new)
        self.loaded.extend(new)
        if not page.get("nextPageToken"):
            self._pages = None
        self.loaded.sort(key=_created, reverse=True)
        if not self.ordered and self._pages is not None:
            self.read_more()


def _created(revision: dict) -> float:
    """``createTime`` in epoch seconds (RFC 3339 with any number of fractional digits); 0 when missing."""
    return rfc3339(revision.get("createTime")) or 0.0


def _newest_first(revisions: list[dict]) -> bool:
    return all(a >= b for a, b in itertools.pairwise(_created(r) for r in revisions))


class CloudRun:
    def __init__(self, endpoint: str = "", *, call_timeout: float = 10.0, credentials=None) -> None:
        """``credentials``: whose calls these are (the doctor's impersonated function account); by default the
        process's own (Application Default Credentials), or none for a local ``http://`` stand-in."""
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import AuthorizedSession

        self.local = endpoint.startswith("http://")
        if credentials is not None:
            pass
        elif self.local:
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
        self._endpoint = endpoint
        self._base = (endpoint or "https://run.googleapis.com").rstrip("/") + "/v2/"

    def identity(self) -> str:
        """The service account the watchdog calls Cloud Run as, once a call has refreshed its token; else ""."""
        email = getattr(self._session.credentials, "service_account_email", "") or ""
        return "" if email == "default" else email

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

    def start_pin(self, ref: ServiceRef, traffic: list[dict], etag: str, annotations: dict[str, str], deadline: float):
        """Replace the service's traffic with ``traffic`` and write ``annotations``, in one update, accepted by
        Cloud Run: returns its operation, not yet done (:meth:`await_pin` waits for it).

        ``traffic`` is the complete v2 traffic list (``type``, ``revision``,
        ``percent``, ``tag``), tagged entries included: an update's traffic
        replaces the whole list. Only ``traffic`` and ``annotations`` are in the
        update mask, so no new revision is created; the etag makes a concurrent
        deploy fail the update (:class:`ConcurrentChange`) instead of being
        overwritten.
        """
        service = run_v2.Service(name=ref.name, etag=etag, annotations=annotations, traffic=_traffic(traffic))
        return self._update(service, ["traffic", "annotations"], deadline)

    def await_pin(self, ref: ServiceRef, operation, deadline: float) -> dict:
        """Wait for the operation of :meth:`start_pin` and for the service to settle (:class:`UpdateFailed`)."""
        try:
            result = operation.result(timeout=max(1.0, deadline - time.monotonic()), polling=_polling(deadline))
        except exceptions.GoogleAPICallError as error:
            if _from_operation(error):
                raise UpdateFailed(str(error)) from error
            raise  # polling itself failed (5xx, 404 …): the caller treats it as transient or permanent
        return self.settled(ref, _to_dict(result), deadline)

    def settled(self, ref: ServiceRef, service: dict, deadline: float) -> dict:
        """The service once Cloud Run has finished reconciling the update ``service`` describes.

        service.proto (``Service.reconciling``): while ``reconciling`` is true,
        ``observedGeneration``, ``latestReadyRevision`` and ``trafficStatuses``
        are transient; only when it is false and ``observedGeneration`` equals
        ``generation`` do they say what serves the update. A done operation may
        still carry a reconciling service, so read it again (backing off) until it
        settles or only ``SETTLE_MARGIN`` of the deadline is left (for the report);
        what it last said is returned either way,
        and :func:`confirmed` tells the caller whether it proves anything.
        """
        delay = 0.1
        while not _settled(service) and deadline - time.monotonic() > delay + SETTLE_MARGIN:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            fresh = self.get_service(ref, deadline)
            if int(fresh.get("generation") or 0) < int(service.get("generation") or 0):
                continue  # a stale read from before the update: keep waiting for ours
            service = fresh
        return service

    def set_traffic_and_annotations(
        self,
        ref: ServiceRef,
        traffic: list[dict] | None,
        annotations: dict[str, str],
        etag: str,
        deadline: float,
        *,
        once: bool = False,
    ) -> None:
        """One etag-guarded update of the traffic (when given) and the annotations. Does not wait.

        ``once``: sent once, never retried here: after a timeout the update may have been applied, and a
        retry with its now stale etag would answer 409 for a change that did land (the caller reads the
        service again to learn what is true)."""
        if traffic is None:
            self._update(run_v2.Service(name=ref.name, etag=etag, annotations=annotations), ["annotations"],
                         deadline, once=once)  # fmt: skip
            return
        service = run_v2.Service(name=ref.name, etag=etag, annotations=annotations, traffic=_traffic(traffic))
        self._update(service, ["traffic", "annotations"], deadline, once=once)

    def reannotate(self, ref: ServiceRef, service: dict, change, deadline: float) -> None:
        """``change(annotations)`` → the new map (None: nothing to write), written etag-guarded; on a conflict
        the service is read once more and ``change`` applied again. Does not wait."""
        for attempt in range(2):
            annotations = change(service.get("annotations"))
            if annotations is None:
                return
            try:
                self.annotate(ref, annotations, service.get("etag", ""), deadline)
                return
            except ConcurrentChange:
                if attempt:
                    raise
                service = self.get_service(ref, deadline)

    def image_digests(self, ref: ServiceRef, revision: str, deadline: float) -> dict[str, str]:
        """The digest Cloud Run resolved each image of ``revision`` to when it created it, by container name
        and by index ("0", "1" …): the v1 (Knative) revision's ``status.containerStatuses[].imageDigest`` and
        ``status.imageDigest`` ("the digest value regardless of whether a tag or digest was originally
        specified"). The v2 Revision has no such field. {} for what the API does not say."""
        base = self._endpoint or f"https://{ref.region}-run.googleapis.com"
        url = f"{base.rstrip('/')}/apis/serving.knative.dev/v1/namespaces/{ref.project}/revisions/{revision}"

        def call() -> dict:
            response = self._session.get(url, timeout=self._timeout(deadline))
            if response.status_code >= 400:
                raise exceptions.from_http_response(response)
            return response.json()

        return image_digests_of((self._retry(deadline)(call)() or {}).get("status") or {})

    def start_template_update(
        self,
        ref: ServiceRef,
        template: dict,
        traffic: list[dict],
        annotations: dict[str, str],
        etag: str,
        deadline: float,
        *,
        validate_only: bool = False,
    ):
        """Create a revision from ``template`` (v2 REST JSON), with ``traffic`` and ``annotations``, in one
        etag-guarded update (mask ``template``, ``traffic``, ``annotations``). Returns the operation; does
        not wait. ``validate_only``: Cloud Run checks the same update and persists nothing.

        The template is parsed strictly: a field this client library does not know would be dropped from
        the new revision, so it raises ``ValueError`` instead."""
        body = {"name": ref.name, "etag": etag, "template": template, "traffic": traffic, "annotations": annotations}
        service = run_v2.Service.from_json(json.dumps(body), ignore_unknown_fields=False)
        return self._update(service, ["template", "traffic", "annotations"], deadline, validate_only=validate_only)

    def annotate(self, ref: ServiceRef, annotations: dict[str, str], etag: str, deadline: float) -> None:
        """Replace the service annotations (no revision is created). Does not wait."""
        self._update(run_v2.Service(name=ref.name, etag=etag, annotations=annotations), ["annotations"], deadline)

    def _update(
        self, service: run_v2.Service, paths: list[str], deadline: float, *, validate_only: bool = False,
        once: bool = False,
    ):  # fmt: skip
        request = run_v2.UpdateServiceRequest(
            service=service, update_mask=field_mask_pb2.FieldMask(paths=paths), validate_only=validate_only
        )
        try:
            return self._services.update_service(
                request=request, retry=None if once else self._retry(deadline), timeout=self._timeout(deadline)
            )
        except exceptions.GoogleAPICallError as error:
            if is_etag_conflict(error):
                raise ConcurrentChange(str(error)) from error
            raise  # every other 409 / 400 / 412 is permanent: the handler reports it


def _settled(service: dict) -> bool:
    return not service.get("reconciling") and int(service.get("observedGeneration") or 0) >= int(
        service.get("generation") or 0
    )


def confirmed(service: dict, target: str | dict[str, int]) -> bool:
    """``target`` serves 100% (or every revision of a split its share), as a settled service reports it in
    ``trafficStatuses`` (not ``traffic``)."""
    if not _settled(service):
        return False
    split = {target: 100} if isinstance(target, str) else {k: v for k, v in target.items() if v}
    serving: dict[str, int] = {}
    for status in service.get("trafficStatuses") or []:
        revision = (status.get("revision") or "").rsplit("/", 1)[-1]
        serving[revision] = serving.get(revision, 0) + int(status.get("percent") or 0)
    return {k: v for k, v in serving.items() if v} == split


def _traffic(entries: list[dict]) -> list:
    return [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType[entry["type"]],  # type: ignore[misc]  # a proto-plus Enum
            revision=entry.get("revision", ""),
            percent=int(entry.get("percent", 0)),
            tag=entry.get("tag", ""),
        )
        for entry in entries
    ]


def _polling(deadline: float) -> retry.Retry:
    """Poll the operation quickly: a traffic-only update usually finishes in seconds."""
    return DEFAULT_POLLING.with_delay(initial=0.1, maximum=2.0, multiplier=1.5).with_timeout(
        max(1.0, deadline - time.monotonic())
    )


def _from_operation(error: exceptions.GoogleAPICallError) -> bool:
    """api_core raises the operation's own error with the Operation as ``response``; HTTP errors carry a
    requests.Response."""
    return type(getattr(error, "response", None)).__name__ == "Operation"


def is_etag_conflict(error: exceptions.GoogleAPICallError) -> bool:
    """Only a stale etag means "re-read and decide again"; every other conflict is permanent.

    What the rules say (https://google.aip.dev/154, "Resource freshness validation"): a
    request whose etag does not match "must" fail with ``ABORTED`` (HTTP 409); before
    2021 the AIP said ``FAILED_PRECONDITION`` (HTTP 400), and APIs that take the etag as
    an ``If-Match`` header answer HTTP 412 ``conditionNotMet``
    (https://cloud.google.com/storage/docs/json_api/v1/status-codes#412_Precondition_Failed).
    So: 409 ``ABORTED`` always counts (it is what the AIP reserves for read-modify-write
    conflicts, https://cloud.google.com/apis/design/errors), while 400
    ``FAILED_PRECONDITION`` and 412 count only when the message is about the etag.
    Everything else (409 ``ALREADY_EXISTS`` "Revision named … with different
    configuration already exists", a ``FAILED_PRECONDITION`` about the service's
    state) would fail the same way on every retry.
    """
    status = rest_status(error) or getattr(getattr(error, "grpc_status_code", None), "name", "")
    about_etag = "etag" in str(getattr(error, "message", "") or error).lower()
    if isinstance(error, exceptions.Conflict) or error.code == 409:
        return status == "ABORTED" or (not status and about_etag)
    if isinstance(error, exceptions.PreconditionFailed) or error.code == 412:
        return about_etag
    if status == "FAILED_PRECONDITION" or isinstance(error, exceptions.FailedPrecondition):
        return about_etag
    return False


def rest_status(error: exceptions.GoogleAPICallError) -> str:
    try:
        return str(error.response.json()["error"]["status"])
    except Exception:  # noqa: BLE001 - any shape of error body: no status
        return ""


def _to_dict(message) -> dict:
    return json_format.MessageToDict(type(message).pb(message))


def image_digests_of(status: dict) -> dict[str, str]:
    """A v1 revision's ``status``: each container's resolved image digest, by index and by name (the digest the
    revision actually runs, which its template's tag may no longer name)."""
    found: dict[str, str] = {}
    for index, container in enumerate(status.get("containerStatuses") or []):
        digest = str((container or {}).get("imageDigest") or "")
        if digest:
            found[str(index)] = digest
            if container.get("name"):
                found[str(container["name"])] = digest
    if "0" not in found and status.get("imageDigest"):
        found["0"] = str(status["imageDigest"])
    return found
