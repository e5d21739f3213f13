"""How alerts reach the watchdog, judged from API JSON alone: notification channels, alert policies, topic IAM.

The doctor (watchdog/tools/doctor.py) reads the JSON (camelCase, as ``MessageToDict``
writes it) and these rules say what in it would stop the watchdog acting:

- a ``pubsub`` notification channel whose ``labels.topic`` is the watchdog's topic
  must exist and be enabled (:func:`watchdog_channels`);
- each alert policy that notifies it must let the notification name the Cloud Run
  service and region: no cross-series reducer that drops
  ``resource.label.service_name``/``location`` unless the filter pins them or the
  policy user labels ``cloud_run_service``/``cloud_run_region`` name them (PromQL
  and MQL queries are checked by their ``by``/``group_by`` text; log-match
  conditions are fine: their labels come from the log entry's resource), and a
  metric policy must auto-close and send CLOSED, or no recovery follow-up ever
  comes (after a rollback the failing revision stops reporting data, so only
  auto-close closes its incident) (:func:`policy_findings`);
- the topic's IAM policy must grant the Monitoring notification agent a publisher
  role (:func:`topic_iam_findings`; only the topic's own policy is visible, so a
  project-level grant reads as missing).

Each :class:`Finding` (the doctor's value for every check, these and the others)
is ``ok``, ``warning``, ``problem`` or ``unchecked``; :func:`exit_code` says which
wins: a problem (1) over something unchecked (2) over healthy (0). Imports no client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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
