"""The doctor's service checks: each watched service exists, and, proven without changing anything, the watchdog
may roll it back (:func:`rollback_rights`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from watchdog.core import ledger, permissions
from watchdog.core.alert_policies import OK, PROBLEM, UNCHECKED, Finding
from watchdog.tools.reach import one_line

SERVICE_PERMISSIONS = ["run.services.get", "run.services.update"]
ACT_AS = "iam.serviceAccounts.actAs"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"


class CannotActAs(Exception):
    """The doctor could not impersonate the account whose rights it proves; the message says why and what to do."""


def impersonated(email: str, env: dict[str, str], cloud_run_endpoint: str, timeout: float):
    """Credentials of ``email``, obtained with the caller's own (Application Default Credentials) through the IAM
    Service Account Credentials API (``generateAccessToken``; ``IAM_API_ENDPOINT`` for a stand-in). They are
    refreshed once here, so that a refusal is one finding, not one per check.

    ``testIamPermissions`` answers for its caller: only calls made as the function's service account prove its
    rights. The caller needs roles/iam.serviceAccountTokenCreator on ``email``.
    """
    import google.auth
    from google.auth import impersonated_credentials
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import Request

    iam = env.get("IAM_API_ENDPOINT", "").strip().rstrip("/")
    if cloud_run_endpoint.startswith("http://"):  # a local stand-in: nothing real is looked for or called
        if not iam:
            raise CannotActAs("no IAM endpoint (IAM_API_ENDPOINT) for a local Cloud Run endpoint")
        if not env.get("GOOGLE_APPLICATION_CREDENTIALS"):
            raise CannotActAs("a local Cloud Run endpoint and no GOOGLE_APPLICATION_CREDENTIALS to impersonate with")
    override = f"{iam}/v1/projects/-/serviceAccounts/{email}:generateAccessToken" if iam else None
    try:
        source, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        credentials = impersonated_credentials.Credentials(
            source_credentials=source,
            target_principal=email,
            target_scopes=[CLOUD_PLATFORM],
            lifetime=max(300, int(timeout) * 20),
            iam_endpoint_override=override,
        )
        credentials.refresh(Request())
    except GoogleAuthError as error:
        raise CannotActAs(
            f"{type(error).__name__}: {one_line(error)}; whoever runs the doctor needs {TOKEN_CREATOR} on it: "
            f"gcloud iam service-accounts add-iam-policy-binding {email} --member user:YOU@EXAMPLE.COM "
            f"--role {TOKEN_CREATOR}"
        ) from None
    return credentials


def service_findings(
    config: Any,
    project: str,
    region: str,
    timeout: float,
    progress: Callable[[str], None],
    *,
    cloud_run: Any,
    project_number: str = "",
    iam_endpoint: str = "",
    incident: str,
) -> list[Finding]:
    """Each named service in WATCHDOG_SERVICES exists (entries take ``project``/``region`` where they name none),
    and :func:`rollback_rights` holds for it, with ``incident`` on the validate-only ledger record."""
    from google.api_core import exceptions

    from watchdog.config import ServiceRef

    found = []
    for entry in config.services.entries:
        parts = {1: (project, region, *entry), 2: (project, *entry)}.get(len(entry), entry)
        ref = ServiceRef(*parts)
        label = "/".join(entry)
        if not ref.region:
            found.append(Finding("service", UNCHECKED, "no region: give --region to check it", label))
            continue
        progress(f"reading service {ref}")
        deadline = time.monotonic() + timeout
        try:
            service = cloud_run.get_service(ref, deadline)
            found.append(Finding("service", OK, f"exists ({ref})", label))
        except exceptions.NotFound:
            found.append(Finding("service", PROBLEM, f"{ref} does not exist: alerts for it cannot be acted on", label))
            continue
        except (exceptions.PermissionDenied, exceptions.Forbidden):
            # Cloud Run answers 403 for a service the caller may not read, whether or not it exists
            who = cloud_run.identity() or "the watchdog's service account"
            command = permissions.operator_command(ref, f"serviceAccount:{who}")
            found.append(Finding("service", PROBLEM, f"the watchdog may not read {ref} (403: it does not exist, or "
                                 f"{who} lacks run.services.get on it): alerts for it cannot be acted on: {command}",
                                 label))  # fmt: skip
            continue
        except Exception as error:  # noqa: BLE001 - any failure to read is "could not check"
            found.append(Finding("service", UNCHECKED, f"could not read {ref}: {one_line(error)}", label))
            continue
        found += rollback_rights(cloud_run, ref, service, label, deadline, progress, project_number, iam_endpoint,
                                 incident=incident)  # fmt: skip
    return found


def rollback_rights(
    cloud_run: Any,
    ref: Any,
    service: dict,
    label: str,
    deadline: float,
    progress: Callable[[str], None],
    project_number: str = "",
    iam_endpoint: str = "",
    *,
    incident: str,
) -> list[Finding]:
    """Prove, changing nothing, that a rollback of ``service`` would be allowed.

    Three checks, each ``unchecked`` (never ``ok``) when it cannot run:

    * ``service_iam``: ``testIamPermissions`` on the service for
      ``run.services.get`` and ``run.services.update``;
    * ``runtime_sa_iam``: ``testIamPermissions`` on its runtime service account
      (``template.serviceAccount``; unset means the Compute Engine default account,
      ``PROJECT_NUMBER-compute@developer.gserviceaccount.com``, known only with
      ``--project-number``) for ``iam.serviceAccounts.actAs``: an update of a
      service acts as its identity;
    * ``dry_run``: ``UpdateService`` with ``validate_only=true``, the rollback's
      update mask (``traffic,annotations``), its body (100% to one revision, the
      ledger annotation added, a record for ``incident``) and the service's etag. Cloud Run validates it and
      persists nothing. The revision is the one serving most now, so even a
      server that ignored validate_only would move no traffic.
    """
    from google.api_core import exceptions

    found: list[Finding] = []
    member = cloud_run.identity()
    who = f"serviceAccount:{member or permissions.PLACEHOLDER}"
    progress(f"testing the watchdog's permissions on {ref}")
    try:
        granted = cloud_run.test_permissions(ref.name, SERVICE_PERMISSIONS, deadline)
        missing = [p for p in SERVICE_PERMISSIONS if p not in granted]
        if missing:
            found.append(Finding("service_iam", PROBLEM, f"the watchdog lacks {', '.join(missing)} on {ref}: "
                                 f"{permissions.operator_command(ref, who)}", label))  # fmt: skip
        else:
            found.append(Finding("service_iam", OK, f"may get and update {ref}", label))
    except Exception as error:  # noqa: BLE001 - could not ask: unchecked
        found.append(Finding("service_iam", UNCHECKED, f"could not test permissions on {ref}: {_short(error)}", label))

    account = (service.get("template") or {}).get("serviceAccount", "")
    if not account and project_number:
        account = f"{project_number}-compute@developer.gserviceaccount.com"
    if not account:
        found.append(Finding("runtime_sa_iam", UNCHECKED, "the service runs as the Compute Engine default "
                             "service account, whose email needs the project number: give --project-number",
                             label))  # fmt: skip
    elif cloud_run.local and not iam_endpoint:
        found.append(Finding("runtime_sa_iam", UNCHECKED, f"no IAM endpoint for a local Cloud Run endpoint "
                             f"(IAM_API_ENDPOINT): actAs on {account} not tested", label))  # fmt: skip
    else:
        try:
            granted = cloud_run.test_service_account_permissions(iam_endpoint, account, [ACT_AS], deadline)
            if ACT_AS in granted:
                found.append(Finding("runtime_sa_iam", OK, f"may act as the runtime service account {account}", label))
            else:
                found.append(Finding("runtime_sa_iam", PROBLEM, f"the watchdog lacks {ACT_AS} on the runtime service "
                                     f"account {account}; every rollback of {ref.service} would get a 403: "
                                     f"{permissions.act_as_command(account, ref.project, who)}", label))  # fmt: skip
        except Exception as error:  # noqa: BLE001 - could not ask: unchecked
            found.append(Finding("runtime_sa_iam", UNCHECKED, f"could not test {ACT_AS} on {account}: "
                                 f"{_short(error)}", label))  # fmt: skip

    statuses = [s for s in service.get("trafficStatuses") or [] if s.get("revision")]
    if not statuses:
        found.append(Finding("dry_run", UNCHECKED, "no revision serves traffic: no rollback to validate", label))
        return found
    serving = max(statuses, key=lambda s: int(s.get("percent") or 0))["revision"]
    record = ledger.Record(incident, serving, serving, round(time.time(), 3))
    traffic = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": serving, "percent": 100}]
    progress(f"validating a rollback update of {ref} (validate_only)")
    try:
        would_be = cloud_run.validate_update(
            ref, traffic, service.get("etag", ""), ledger.with_record(service.get("annotations"), record), deadline
        )
    except (exceptions.PermissionDenied, exceptions.Forbidden) as error:
        missing = permissions.missing_permission(str(error), ref, member)
        found.append(Finding("dry_run", PROBLEM, f"Cloud Run refused the rollback update: {missing.permission} on "
                             f"{missing.resource}: {missing.command}", label))  # fmt: skip
        return found
    except Exception as error:  # noqa: BLE001 - a conflict, an outage: not proven either way
        from watchdog.edges.cloudrun import ConcurrentChange

        status = PROBLEM if isinstance(error, exceptions.BadRequest) else UNCHECKED
        if isinstance(error, ConcurrentChange):
            status = UNCHECKED  # the service changed while the doctor looked: try again
        found.append(Finding("dry_run", status, f"validate_only update of {ref} failed: {_short(error)}", label))
        return found
    sent = [(t.get("revision"), t.get("percent")) for t in would_be.get("traffic") or []]
    if sent != [(serving, 100)]:
        found.append(Finding("dry_run", UNCHECKED, f"validate_only answered without the would-be traffic ({sent})",
                             label))  # fmt: skip
    else:
        found.append(Finding("dry_run", OK, f"Cloud Run accepts the rollback update (validate_only: "
                             f"traffic,annotations with the etag; 100% to {serving})", label))  # fmt: skip
    found.append(_field_revert_dry_run(cloud_run, ref, service, serving, label, deadline, progress, incident))
    return found


def _field_revert_dry_run(
    cloud_run: Any, ref: Any, service: dict, serving: str, label: str, deadline: float, progress, incident: str
) -> Finding:
    """``field_revert_dry_run``: the field revert's own update, validated and not persisted: the image digests read
    from the serving revision (v1), then ``UpdateService`` with ``validate_only=true`` and the mask
    ``template,traffic,annotations`` creating a revision at 0% behind a tag. It needs what the rollback needs,
    plus ``run.revisions.get`` for the digests; a template update acts as the runtime account too."""
    from google.api_core import exceptions

    from watchdog.core import field_revert

    progress(f"validating a field revert's update of {ref} (validate_only)")
    try:
        revision = cloud_run.get_revision(ref, serving, deadline)
        digests = cloud_run.image_digests(ref, serving, deadline)
        plan = field_revert.plan(service, revision, revision, digests, incident)
        if isinstance(plan, field_revert.Unplannable):
            return Finding("field_revert_dry_run", UNCHECKED, f"no field revert to validate: {plan.reason}", label)
        traffic = field_revert.candidate_traffic(list(service.get("traffic") or []), plan.name)
        cloud_run.start_template_update(ref, plan.template, traffic, dict(service.get("annotations") or {}),
                                        service.get("etag", ""), deadline, validate_only=True)  # fmt: skip
    except (exceptions.PermissionDenied, exceptions.Forbidden) as error:
        missing = permissions.missing_permission(str(error), ref, cloud_run.identity())
        return Finding("field_revert_dry_run", PROBLEM, f"Cloud Run refused the field revert's update: "
                       f"{missing.permission} on {missing.resource}: {missing.command}", label)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - a conflict, an outage: not proven either way
        return Finding("field_revert_dry_run", UNCHECKED, f"validate_only field revert of {ref} failed: "
                       f"{_short(error)}", label)  # fmt: skip
    return Finding("field_revert_dry_run", OK, f"Cloud Run accepts a field revert's update (validate_only: a "
                   f"new revision from {serving}'s configuration, images by digest, at 0% behind a tag)",
                   label)  # fmt: skip


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"
