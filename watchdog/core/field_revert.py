"""The field revert: revert only the field that broke the service, keep the code that was serving.

Pure code. The staging incident's write-up asked for exactly this ("if health checks fail,
auto-revert VPC settings"). Pinning traffic to the known-good revision is safe in seconds, but
it also takes out of service every deploy made after the breaking one (hotfixes, migrations'
code, security fixes), and traffic stays pinned until a human acts. So, once traffic is pinned
(watchdog/flows/field_revert.py does the I/O, in this order):

1. a new revision is created from the failing revision's configuration (the code that was
   serving) with only the trigger fields set to the known-good revision's values: the VPC
   access block (egress, and the connector or Direct VPC interfaces when they changed
   together) and the Cloud SQL instances when they changed. Every image is pinned by digest,
   so a tag that moved since cannot bring other code in. It is created at 0% behind a traffic
   tag, through an etag-guarded update that Cloud Run first validates (``validate_only``);
2. once it is Ready, the pinned share moves to it in a second etag-guarded update, every tag
   kept. When that share followed LATEST before the rollback, it follows LATEST again (the new
   revision is the newest): the pin is released, and later deploys take traffic as before;
3. if it never becomes Ready within :data:`READY_SECONDS`, the pin stays and on-call is paged.

Which remedy, first that applies (:func:`remedy`):

- ``pin`` when a field revert cannot apply: ``WATCHDOG_ROLLBACK_ON=any`` (the cause may be the
  code itself), a target that already served before the rollback or a split where other
  revisions keep serving (a canary's share goes back to the stable side, which is what a canary
  is for), or no egress/network field to revert;
- ``field_revert`` when ``WATCHDOG_FIELD_REVERT=auto`` and the pin would take something out of
  service besides the trigger fields (the failing revision differs from the target in code or
  other settings);
- ``pin`` otherwise; the card then offers the field revert (``offer`` mode, or a plain pin that
  would keep every later deploy at 0% until someone moves traffic).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.core.changes import Change, template_changes
from watchdog.core.traffic import LATEST_TYPE, REVISION_TYPE, short_name

PIN = "pin"
FIELD_REVERT = "field_revert"
READY_SECONDS = 600.0  # a new revision not Ready 10 minutes after it was created is not coming
LABEL = "rollback-watchdog"  # label key on the revision the watchdog creates (value: LABEL_VALUE)
LABEL_VALUE = "field-revert"
TAG = "watchdog-revert"  # traffic tag of the new revision while it is at 0%
REVERTED_KINDS = ("egress", "network")

# RevisionTemplate fields a Revision also carries: copied from the failing revision, so the new
# revision runs exactly what was serving (the service's template may already describe a newer deploy).
_FROM_REVISION = (
    "scaling",
    "timeout",
    "serviceAccount",
    "containers",
    "volumes",
    "executionEnvironment",
    "encryptionKey",
    "maxInstanceRequestConcurrency",
    "serviceMesh",
    "encryptionKeyRevocationAction",
    "encryptionKeyShutdownDuration",
    "sessionAffinity",
    "nodeSelector",
    "gpuZonalRedundancyDisabled",
)


@dataclass(frozen=True)
class Remedy:
    kind: str  # PIN or FIELD_REVERT
    offer: bool  # a pin whose card offers the field revert (button, `rollback-watchdog revert-field`)
    why: str  # one sentence: why this remedy


@dataclass(frozen=True)
class Plan:
    """The field-revert revision to create."""

    name: str  # its revision name (``template.revision``)
    template: dict  # the v2 RevisionTemplate JSON to send
    reverted: tuple[Change, ...]  # the fields set back, failing → target values
    images: tuple[tuple[str, str], ...]  # (image as the failing revision names it, image as pinned)


@dataclass(frozen=True)
class Unplannable:
    reason: str  # why no field revert can be built; the pin stays


def remedy(
    mode: str, rollback_on: str, failing: dict, target: dict, split: dict[str, int], serving: dict[str, int]
) -> Remedy:
    """The remedy for a rollback from ``failing`` to ``target`` that sets ``split`` (``serving`` is the split
    before); see the module docstring."""
    if rollback_on == "any":
        return Remedy(PIN, False, "WATCHDOG_ROLLBACK_ON=any: the cause may be the code, so the whole revision goes")
    name = short_name(target.get("name", ""))
    if serving.get(name, 0) > 0 or [n for n, percent in split.items() if percent > 0] != [name]:
        return Remedy(PIN, False, "the target serves already: the failing share goes back to it")
    changes = template_changes(target, failing)
    if not any(c.kind in REVERTED_KINDS for c in changes):
        return Remedy(PIN, False, "no egress or network field differs")
    kept = [c for c in changes if c.kind not in REVERTED_KINDS]
    if mode == "auto" and kept:
        return Remedy(FIELD_REVERT, False, "pinning alone would take later deploys out of service")
    why = "WATCHDOG_FIELD_REVERT=off" if mode == "off" else "nothing but the trigger fields differs"
    if mode == "offer":
        why = "WATCHDOG_FIELD_REVERT=offer"
    return Remedy(PIN, mode != "off", why)


def taken_out(revisions: Sequence[dict], failing: str, breaking: str) -> tuple[tuple[str, str], ...]:
    """(revision, images) a pin takes out of service: from the failing revision back to the breaking one,
    newest first. ``revisions`` are newest first."""
    names = [short_name(r.get("name", "")) for r in revisions]
    if failing not in names or breaking not in names:
        return ()
    start, end = names.index(failing), names.index(breaking)
    return tuple(
        (names[i], ", ".join(_image_label(c.get("image", "")) for c in _containers(revisions[i])))
        for i in range(start, end + 1)
        if _was_ready(revisions[i])
    )


def revision_name(service: str, incident: str) -> str:
    """The new revision's name: starts with the service name, as Cloud Run requires, and is the same for
    every delivery of one incident (a redelivery finds the revision instead of making another)."""
    digest = hashlib.sha256(incident.encode()).hexdigest()[:6]
    return f"{service[:49]}-revert-{digest}"


def plan(service: dict, failing: dict, target: dict, digests: dict[str, str], incident: str) -> Plan | Unplannable:
    """The field-revert revision: ``failing``'s configuration, ``target``'s egress/network fields.

    ``digests`` maps each container's name (or its index, as a string) to the digest Cloud Run
    resolved its image to when ``failing`` was created (``sha256:…`` or a full ``repo@sha256:…``).
    """
    template = copy.deepcopy(service.get("template") or {})
    for key in _FROM_REVISION:
        if key in failing:
            template[key] = copy.deepcopy(failing[key])
        else:
            template.pop(key, None)
    if _vpc(target):  # egress, and the connector or Direct VPC interfaces with it, as the target has them
        template["vpcAccess"] = copy.deepcopy(_vpc(target))
    else:
        template.pop("vpcAccess", None)
    if _sql(target) != _sql(failing):
        _set_sql(template, target)
    images = []
    for index, container in enumerate(template.get("containers") or []):
        image = str(container.get("image", ""))
        pinned = pin_image(image, digests.get(str(container.get("name") or index), ""))
        if not pinned:
            return Unplannable(
                f"the image {image} is a tag and the digest Cloud Run resolved it to could not be read: a new "
                "revision could pick up other code, so traffic stays pinned"
            )
        container["image"] = pinned
        images.append((image, pinned))
    name = revision_name(short_name(service.get("name", "")), incident)
    template["revision"] = name
    template["labels"] = {**(template.get("labels") or {}), LABEL: LABEL_VALUE}
    reverted = tuple(
        Change(c.field, c.kind, c.new, c.old) for c in template_changes(target, failing) if c.kind in REVERTED_KINDS
    )
    return Plan(name, template, reverted, tuple(images))


def pin_image(image: str, digest: str) -> str:
    """``image`` by digest: itself when it already is; "" when it names a tag and the digest is unknown."""
    if "@sha256:" in image:
        return image
    if not digest:
        return ""
    if "@" in digest:
        return digest  # the full reference, as Cloud Run's v1 ``status.imageDigest`` gives it
    repository = image.rsplit("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:  # a tag, not a registry port
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return f"{repository}@{digest}"


def candidate_traffic(pinned: list[dict], name: str) -> list[dict]:
    """The traffic list that creates the new revision at 0% behind :data:`TAG`, the pin unchanged."""
    entries = [dict(e) for e in pinned if e.get("tag") != TAG]
    entries.append({"type": REVISION_TYPE, "revision": name, "percent": 0, "tag": TAG})
    return entries


def moved_traffic(current: list[dict], target: str, name: str, *, release: bool = False) -> list[dict]:
    """``current`` (the pin) with ``target``'s share moved to ``name``; every tag kept, on its revision.

    ``release``: the share goes back to following LATEST, as it did before the rollback (the caller
    has checked that ``name`` is the service's newest revision, so LATEST is ``name``): the pin is
    released, and the next deploy takes traffic as it would have without the watchdog."""
    share = sum(int(e.get("percent") or 0) for e in current if short_name(e.get("revision", "")) == target)
    out: list[dict] = []
    for entry in current:
        entry = dict(entry)
        revision = short_name(entry.get("revision", ""))
        if revision == target:
            if not entry.get("tag"):
                continue
            entry["percent"] = 0
        out.append(entry)
    if release:
        out.append({"type": LATEST_TYPE, "percent": share})
    else:
        tagged = next((e for e in out if short_name(e.get("revision", "")) == name), None)
        if tagged is not None:
            tagged["percent"] = share
        else:
            out.append({"type": REVISION_TYPE, "revision": name, "percent": share})
    return out


def releases(before: Sequence[Sequence], service: dict, name: str) -> bool:
    """Whether the moved share may follow LATEST again: before the rollback it did (``before`` is the ledger
    record's traffic, [revision or "LATEST", percent, tag]), and ``name`` is the newest revision, Ready."""
    followed = any(revision == "LATEST" and int(percent) > 0 for revision, percent, _tag in before)
    newest = short_name(service.get("latestCreatedRevision", "")) == name
    return followed and newest and short_name(service.get("latestReadyRevision", "")) == name


def _image_label(image: str) -> str:
    """The part of an image reference a human recognises: the tag, else a short digest."""
    if "@sha256:" in image:
        return image.rsplit("@sha256:", 1)[1][:12]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else last


def _containers(revision: dict) -> list[dict]:
    found = revision.get("containers")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def _was_ready(revision: dict) -> bool:
    conditions = revision.get("conditions")
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED"
        for c in (conditions if isinstance(conditions, list) else [])
    )


def _vpc(revision: dict) -> dict:
    found = revision.get("vpcAccess")
    return found if isinstance(found, dict) else {}


def _sql(revision: dict) -> list:
    return [v for v in revision.get("volumes") or [] if isinstance(v, dict) and "cloudSqlInstance" in v]


def _set_sql(template: dict, target: dict) -> None:
    """The template's Cloud SQL volumes (and their mounts) as the target has them."""
    old = {v.get("name") for v in _sql(template)}
    volumes = [v for v in template.get("volumes") or [] if not (isinstance(v, dict) and "cloudSqlInstance" in v)]
    volumes += copy.deepcopy(_sql(target))
    template["volumes"] = volumes
    new = {v.get("name") for v in _sql(target)}
    mounts_by_container = {
        str(c.get("name") or i): [m for m in c.get("volumeMounts") or [] if m.get("name") in new]
        for i, c in enumerate(_containers(target))
    }
    for index, container in enumerate(template.get("containers") or []):
        kept = [m for m in container.get("volumeMounts") or [] if m.get("name") not in old]
        container["volumeMounts"] = kept + copy.deepcopy(
            mounts_by_container.get(str(container.get("name") or index), [])
        )
        if not container["volumeMounts"]:
            container.pop("volumeMounts")
