"""``python -m watchdog doctor``: what would stop the watchdog acting on an alert.

It reads, never writes:

- notification channels (Monitoring): a ``pubsub`` channel whose ``labels.topic``
  is the watchdog's topic must exist and be enabled;
- alert policies (Monitoring) that notify that channel: each must let the
  notification name the Cloud Run service and region (no cross-series
  reducer that drops ``resource.label.service_name``/``location`` unless the
  filter or the policy user labels ``cloud_run_service``/``cloud_run_region``
  name them; PromQL and MQL queries are checked by their ``by``/``group_by``
  text; log-match conditions are fine: their labels come from the log
  entry's resource), and metric policies must auto-close and send CLOSED,
  or no recovery follow-up ever comes (after a rollback the failing revision
  stops reporting data, so only auto-close closes its incident);
- the topic (Pub/Sub): it exists, and its IAM policy grants the Monitoring
  notification agent (``service-N@gcp-sa-monitoring-notification``) a
  publisher role. Only the topic's own policy is visible: a project-level
  grant is reported as missing. An endpoint without the IAM API (the pstest
  emulator) makes this check "unchecked";
- every service in ``WATCHDOG_SERVICES`` exists (Cloud Run ``GetService``), and the
  watchdog may roll it back (:func:`rollback_rights`: ``testIamPermissions`` on the
  service and on its runtime service account, and a ``validate_only`` update with
  the rollback's mask and body);
- the configuration itself (invalid values, paused, dry run, empty scope).

Each :class:`Finding` is ``ok``, ``warning``, ``problem`` or ``unchecked``.
Exit codes of the command: 0 healthy, 1 at least one problem, 2 nothing
wrong found but something could not be checked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
UNCHECKED = "unchecked"

AGENT = re.compile(r"^serviceAccount:service-(\d+)@gcp-sa-monitoring-notification\.iam\.gserviceaccount\.com$")
PUBLISHER_ROLES = {"roles/pubsub.publisher", "roles/pubsub.editor", "roles/pubsub.admin", "roles/editor", "roles/owner"}
_NO_REDUCER = {"", "REDUCE_NONE"}
_PROMQL_AGG = re.compile(
    r"\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(\(|by\b|without\b)"
)


@dataclass(frozen=True)
class Finding:
    check: str  # channel, policy, topic, topic_iam, service, service_iam, runtime_sa_iam, dry_run, config
    status: str  # OK, WARNING, PROBLEM, UNCHECKED
    message: str
    subject: str = ""  # the policy, channel, topic or service it is about

    def as_dict(self) -> dict:
        return {"check": self.check, "status": self.status, "subject": self.subject, "message": self.message}


def exit_code(findings: Iterable[Finding]) -> int:
    statuses = {f.status for f in findings}
    if PROBLEM in statuses:
        return 1
    if UNCHECKED in statuses:
        return 2
    return 0


# --- pure checks over API JSON (camelCase, as MessageToDict writes it) -------------------------


def watchdog_channels(channels: list[dict], topic: str) -> tuple[list[dict], list[Finding]]:
    mine = [c for c in channels if c.get("type") == "pubsub" and (c.get("labels") or {}).get("topic") == topic]
    if not mine:
        return [], [
            Finding(
                "channel",
                PROBLEM,
                f"no pubsub notification channel publishes to {topic}: no alert can reach the watchdog",
                topic,
            )
        ]
    found = []
    for channel in mine:
        label = channel.get("displayName") or channel.get("name", "")
        if channel.get("enabled", True) is False:
            found.append(Finding("channel", PROBLEM, "the channel is disabled: Monitoring sends nothing", label))
        else:
            found.append(Finding("channel", OK, f"publishes to {topic}", label))
    return mine, found


def policy_findings(policy: dict) -> list[Finding]:
    """What in one alert policy (routed to the watchdog) stops the watchdog acting."""
    name = policy.get("displayName") or policy.get("name", "")
    labels = policy.get("userLabels") or {}
    found: list[Finding] = []
    if policy.get("enabled", True) is False:
        found.append(Finding("policy", WARNING, "the policy is disabled: it never fires", name))
    if labels.get("rollback_watchdog") == "self":
        found.append(
            Finding("policy", PROBLEM, "a policy about the watchdog itself notifies the watchdog's own channel", name)
        )
    conditions = policy.get("conditions") or []
    kinds = []
    for condition in conditions:
        kind, problems = _condition(condition, labels)
        kinds.append(kind)
        found += [Finding("policy", status, f"{condition.get('displayName') or kind}: {text}", name)
                  for status, text in problems]  # fmt: skip
    if conditions and any(k != "log-match" for k in kinds):
        strategy = policy.get("alertStrategy") or {}
        if not strategy.get("autoClose"):
            found.append(
                Finding(
                    "policy",
                    PROBLEM,
                    "no alertStrategy.autoClose: after a rollback the failing revision stops reporting data, so the "
                    "incident never closes and no recovery follow-up is sent",
                    name,
                )
            )
        prompts = strategy.get("notificationPrompts") or []
        if prompts and "CLOSED" not in prompts:
            found.append(
                Finding(
                    "policy",
                    PROBLEM,
                    f"notificationPrompts {prompts} lack CLOSED: no recovery follow-up",
                    name,
                )
            )
    if not any(f.status in (PROBLEM, UNCHECKED) for f in found):
        found.append(Finding("policy", OK, "notifications name the service; incidents close", name))
    return found


def _condition(condition: dict, user_labels: dict) -> tuple[str, list[tuple[str, str]]]:
    for key in ("conditionThreshold", "conditionAbsent"):
        if key in condition:
            spec = condition[key] or {}
            text = spec.get("filter", "")
            problems = []
            resource = re.search(r"resource\.type\s*=\s*\"([^\"]+)\"", text)
            if resource and resource.group(1) != "cloud_run_revision":
                problems.append(
                    (WARNING, f"about {resource.group(1)} resources, not cloud_run_revision: the watchdog ignores it")
                )
            for agg in (spec.get("aggregations") or []) + (spec.get("denominatorAggregations") or []):
                if agg.get("crossSeriesReducer", "") in _NO_REDUCER:
                    continue
                groups = [g.replace("resource.labels.", "resource.label.") for g in agg.get("groupByFields") or []]
                problems += _lost_labels(
                    {"service_name": "resource.label.service_name" in groups,
                     "location": "resource.label.location" in groups},
                    text, user_labels, f"{agg['crossSeriesReducer']} without groupByFields",
                )  # fmt: skip
            return ("metric-threshold" if key == "conditionThreshold" else "metric-absence"), problems
    if "conditionMatchedLog" in condition:
        return "log-match", []
    if "conditionPrometheusQueryLanguage" in condition:
        query = (condition["conditionPrometheusQueryLanguage"] or {}).get("query", "")
        if not _PROMQL_AGG.search(query):
            return "promql", []
        by = re.findall(r"\bby\s*\(([^)]*)\)", query)
        without = re.findall(r"\bwithout\s*\(([^)]*)\)", query)

        def kept(label: str) -> bool:
            if by:
                return all(label in _words(b) for b in by)
            return bool(without) and all(label not in _words(w) for w in without)

        return "promql", _lost_labels(
            {"service_name": kept("service_name"), "location": kept("location")}, query, user_labels, "the aggregation"
        )
    if "conditionMonitoringQueryLanguage" in condition:
        query = (condition["conditionMonitoringQueryLanguage"] or {}).get("query", "")
        groups = re.findall(r"\bgroup_by\s*\[([^\]]*)\]", query)
        if not groups:
            return "mql", []
        return "mql", _lost_labels(
            {label: all(label in _words(g) for g in groups) for label in ("service_name", "location")},
            query,
            user_labels,
            "group_by",
        )
    if "conditionSql" in condition:
        return "sql", [(UNCHECKED, "SQL (Log Analytics) conditions are not checked")]
    return "unknown", [(UNCHECKED, "unknown condition type, not checked")]


def _lost_labels(kept: dict[str, bool], text: str, user_labels: dict, how: str) -> list[tuple[str, str]]:
    """Problems for labels the aggregation drops, unless the filter pins them or user labels carry them."""
    fallback = {"service_name": "cloud_run_service", "location": "cloud_run_region"}
    problems = []
    for label, is_kept in kept.items():
        if is_kept or user_labels.get(fallback[label]) or _pinned(text, label):
            continue
        what = "service" if label == "service_name" else "region"
        problems.append(
            (
                PROBLEM,
                f"{how} drops {label}: the notification cannot name the {what} (group by "
                f"resource.label.{label}, or set the policy user label {fallback[label]})",
            )
        )
    return problems


def _pinned(text: str, label: str) -> bool:
    return re.search(rf"\b{label}\s*(?:==|=|:)\s*[\"']", text) is not None


def _words(text: str) -> set[str]:
    return {w.rsplit(".", 1)[-1] for w in re.findall(r"[\w.]+", text)}


def topic_iam_findings(policy: dict, topic: str, project_number: str = "") -> list[Finding]:
    for binding in policy.get("bindings") or []:
        if binding.get("role") not in PUBLISHER_ROLES:
            continue
        for member in binding.get("members") or []:
            match = AGENT.match(member)
            if match and (not project_number or match.group(1) == str(project_number)):
                return [Finding("topic_iam", OK, f"{member} has {binding['role']}", topic)]
    who = f"service-{project_number}@gcp-sa-monitoring-notification" if project_number else "the notification agent"
    return [
        Finding(
            "topic_iam",
            PROBLEM,
            f"no publisher grant for the Monitoring notification agent ({who}) on the topic: "
            "Monitoring cannot publish incidents (only topic-level bindings are visible here; "
            "a project-level grant shows as missing)",
            topic,
        )
    ]


def config_findings(env: dict[str, str]) -> tuple[Any, list[Finding]]:
    from watchdog.config import Config, ConfigError

    try:
        config = Config.from_env(env)
    except ConfigError as error:
        return None, [Finding("config", PROBLEM, f"invalid configuration: {error}", "environment")]
    found = []
    if config.paused:
        found.append(Finding("config", WARNING, "WATCHDOG_PAUSED=true: the watchdog only reports", "environment"))
    if config.dry_run:
        found.append(Finding("config", WARNING, "WATCHDOG_DRY_RUN=true: the watchdog only reports", "environment"))
    if not config.services:
        found.append(
            Finding("config", WARNING, "WATCHDOG_SERVICES is empty: the watchdog never rolls back", "environment")
        )
    return config, found


# --- the reads ----------------------------------------------------------------------------------


def run(
    project: str,
    topic: str,
    env: dict[str, str],
    *,
    region: str = "",
    project_number: str = "",
    timeout: float = 15.0,
    progress: Callable[[str], None] = lambda _text: None,
) -> list[Finding]:
    from google.api_core import exceptions
    from google.api_core import retry as retries
    from google.protobuf import json_format

    findings: list[Finding] = []
    # transient errors are retried, but never past --timeout (the clients' own default is 30 s)
    retry = retries.Retry(predicate=retries.if_transient_error, initial=0.2, maximum=2.0, timeout=timeout)
    from google.auth.exceptions import GoogleAuthError

    failed = (exceptions.GoogleAPICallError, exceptions.RetryError, GoogleAuthError)
    config, found = config_findings(env)
    findings += found
    endpoint = env.get("MONITORING_API_ENDPOINT", "").strip()

    def as_dicts(pager: Any) -> list[dict]:
        return [json_format.MessageToDict(type(item).pb(item)) for item in pager]

    from google.cloud import monitoring_v3

    from watchdog.edges.monitoring import client

    mine: list[dict] = []
    progress(f"reading notification channels of {project}")
    try:
        channels = as_dicts(
            client(monitoring_v3.NotificationChannelServiceClient, endpoint).list_notification_channels(
                name=f"projects/{project}", retry=retry, timeout=timeout
            )
        )
        mine, found = watchdog_channels(channels, topic)
        findings += found
    except failed as error:
        findings.append(Finding("channel", UNCHECKED, f"could not list notification channels: {error}", project))

    if mine:
        progress(f"reading alert policies of {project}")
        try:
            policies = as_dicts(
                client(monitoring_v3.AlertPolicyServiceClient, endpoint).list_alert_policies(
                    name=f"projects/{project}", retry=retry, timeout=timeout
                )
            )
            names = {c.get("name") for c in mine}
            routed = [p for p in policies if names & set(p.get("notificationChannels") or [])]
            if not routed:
                findings.append(Finding("policy", PROBLEM, "no alert policy notifies the watchdog's channel", project))
            for policy in routed:
                findings += policy_findings(policy)
        except failed as error:
            findings.append(Finding("policy", UNCHECKED, f"could not list alert policies: {error}", project))

    findings += _topic(topic, project_number, timeout, progress)
    if config is not None:
        findings += _services(
            config,
            project,
            region,
            timeout,
            progress,
            project_number=project_number,
            iam_endpoint=env.get("IAM_API_ENDPOINT", "").strip(),
        )
        findings += _needs_human(config, project, region, timeout, progress)
    return findings


def _needs_human(config: Any, project: str, region: str, timeout: float, progress) -> list[Finding]:
    """What ``status`` says needs a human (watchdog/core/status.py), as problems: a forgotten pause or pin,
    an escalated or never verified rollback."""
    from watchdog.core import status
    from watchdog.edges.cloudrun import CloudRun

    try:
        cloud_run = CloudRun(config.cloud_run_endpoint)
    except Exception as error:  # noqa: BLE001 - no credentials: _services already says so
        return [Finding("attention", UNCHECKED, f"no credentials for Cloud Run: {error}", "WATCHDOG_SERVICES")]
    found = []
    for item in status.gather(config, cloud_run, project=project, region=region, timeout=timeout, progress=progress):
        # a service that cannot be read or located is already the "service" check's finding
        found += [Finding("attention", PROBLEM, f"needs a human: {text}", item.service) for text in item.needs_human]
    return found


def _topic(topic: str, project_number: str, timeout: float, progress: Callable[[str], None]) -> list[Finding]:
    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import pubsub_v1
    from google.protobuf import json_format

    progress(f"reading topic {topic}")
    try:
        publisher = pubsub_v1.PublisherClient()
    except GoogleAuthError as error:
        return [Finding("topic", UNCHECKED, f"no credentials for Pub/Sub: {error}", topic)]
    try:
        try:
            publisher.get_topic(topic=topic, timeout=timeout)
        except exceptions.NotFound:
            return [Finding("topic", PROBLEM, "the topic does not exist", topic)]
        except exceptions.GoogleAPICallError as error:
            return [Finding("topic", UNCHECKED, f"could not read the topic: {error}", topic)]
        found = [Finding("topic", OK, "exists", topic)]
        try:
            policy = publisher.get_iam_policy(request={"resource": topic}, timeout=timeout)
        except exceptions.MethodNotImplemented:
            return [*found, Finding("topic_iam", UNCHECKED, "this Pub/Sub endpoint does not implement IAM", topic)]
        except exceptions.GoogleAPICallError as error:
            return [*found, Finding("topic_iam", UNCHECKED, f"could not read the topic's IAM policy: {error}", topic)]
        return found + topic_iam_findings(json_format.MessageToDict(policy), topic, project_number)
    finally:
        publisher.transport.close()


SERVICE_PERMISSIONS = ["run.services.get", "run.services.update"]
ACT_AS = "iam.serviceAccounts.actAs"
DOCTOR_INCIDENT = "doctor-validate-only"


def _services(
    config: Any,
    project: str,
    region: str,
    timeout: float,
    progress: Callable[[str], None],
    *,
    project_number: str = "",
    iam_endpoint: str = "",
) -> list[Finding]:
    from google.api_core import exceptions

    from watchdog.config import ServiceRef
    from watchdog.edges.cloudrun import CloudRun

    if config.services.everything:
        return [
            Finding("service", OK, "WATCHDOG_SERVICES is '*': every service is in scope", "*"),
            Finding("dry_run", UNCHECKED, "with '*' there is no list of services to prove rollback rights on: "
                    "name the services in WATCHDOG_SERVICES to have them checked", "*"),
        ]  # fmt: skip
    from google.auth.exceptions import GoogleAuthError

    try:
        cloud_run = CloudRun(config.cloud_run_endpoint)
    except GoogleAuthError as error:
        return [Finding("service", UNCHECKED, f"no credentials for Cloud Run: {error}", "WATCHDOG_SERVICES")]
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
        except Exception as error:  # noqa: BLE001 - any failure to read is "could not check"
            found.append(Finding("service", UNCHECKED, f"could not read {ref}: {type(error).__name__}: {error}", label))
            continue
        found += rollback_rights(cloud_run, ref, service, label, deadline, progress, project_number, iam_endpoint)
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
      ledger annotation added) and the service's etag. Cloud Run validates it and
      persists nothing. The revision is the one serving most now, so even a
      server that ignored validate_only would move no traffic.
    """
    from google.api_core import exceptions

    from watchdog.core import ledger, permissions

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
    record = ledger.Record(DOCTOR_INCIDENT, serving, serving, round(time.time(), 3))
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
    return found


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"
