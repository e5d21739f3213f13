"""What a Cloud Run 403 means, and the ``gcloud`` command that fixes it. Pure code.

Cloud Run names the permission it checked in the 403's message. The two a
rollback can run into, as Cloud Run words them (seen in public reports, e.g.
GoogleCloudPlatform/cloud-run-release-manager#81 and
google-github-actions/deploy-cloudrun#182):

* ``Permission 'run.services.update' denied on resource 'projects/…/services/S'
  (or resource may not exist).``: the watchdog may not change the service;
* ``Permission 'iam.serviceaccounts.actAs' denied on service account
  SA@… (or it may not exist).``: an update of a service "acts as" its runtime
  service account, so the watchdog needs ``roles/iam.serviceAccountUser`` on it.

A message that names neither still gets a command: the operator role on the
service, the most likely cause of a 403 from the update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchdog.config import ServiceRef

ACT_AS = "iam.serviceAccounts.actAs"
UPDATE = "run.services.update"
PLACEHOLDER = "WATCHDOG_SERVICE_ACCOUNT"

_PERMISSION = re.compile(r"[Pp]ermission\s+['‘\"]?([a-zA-Z]+\.[a-zA-Z]+\.[a-zA-Z]+)['’\"]?\s+denied")
_SERVICE_ACCOUNT = re.compile(r"on service account\s+([\w.@-]+\.gserviceaccount\.com)")


@dataclass(frozen=True)
class Missing:
    """The permission a 403 names, on what, and how to grant it."""

    permission: str  # as IAM spells it (iam.serviceAccounts.actAs, run.services.update), or ""
    resource: str  # the service account or the service
    command: str  # the gcloud command that grants it


def missing_permission(message: str, ref: ServiceRef, member: str = "") -> Missing:
    """Read a Cloud Run 403 message; ``member`` is the watchdog's own identity, when known."""
    who = f"serviceAccount:{member or PLACEHOLDER}"
    found = _PERMISSION.search(message)
    permission = found.group(1) if found else ""
    if permission.lower() == ACT_AS.lower():
        account = _SERVICE_ACCOUNT.search(message)
        email = account.group(1) if account else "RUNTIME_SERVICE_ACCOUNT"
        return Missing(ACT_AS, email, act_as_command(email, ref.project, who))
    # any other run.* permission (run.services.get, run.operations.get): the operator role has them all
    return Missing(permission or UPDATE, ref.name, operator_command(ref, who))


def act_as_command(email: str, project: str, member: str) -> str:
    return (
        f"gcloud iam service-accounts add-iam-policy-binding {email} --project {project} "
        f"--member {member} --role roles/iam.serviceAccountUser"
    )


def operator_command(ref: ServiceRef, member: str) -> str:
    # roles/run.developer has run.services.update; terraform/ grants the narrower rollbackWatchdogOperator role
    return (
        f"gcloud run services add-iam-policy-binding {ref.service} --region {ref.region} --project {ref.project} "
        f"--member {member} --role roles/run.developer"
    )
