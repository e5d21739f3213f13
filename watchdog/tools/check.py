"""``rollback-watchdog check``: the pre-deploy gate, with the same rules as the deploy sentinel (core/precheck.py)."""

from __future__ import annotations

import sys
import time

import click

from watchdog.tools.options import (
    CONTEXT,
    CouldNotCheck,
    api_call,
    change_json,
    cloud_run,
    cloud_run_endpoint_option,
    emit_json,
    json_option,
    load_config,
    target,
    waiting,
    where_options,
)

EPILOG = """\b
Exit codes:
  0  no risky change (harmless differences such as image or env are listed)
  1  risky change: egress flip, all-traffic egress with Cloud SQL sockets, connector or
     network interfaces added/removed/changed (unless acknowledged with --allow RULE)
  2  could not check: service or revision not found, Cloud Run API errors

\b
In CI/CD, before migrating traffic:
  gcloud run deploy S --no-traffic …
  rollback-watchdog check --project P --region R --service S
  gcloud run services update-traffic S --to-latest …
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service about to get traffic.")
@click.option("--revision", help="Candidate revision (default: the latest created).")
@click.option("--allow", multiple=True, help="Acknowledge a rule (e.g. all-traffic-cloud-sql): report, don't fail.")
@json_option
@click.option("--deadline", type=float, default=30.0, show_default=True, help="Seconds for the Cloud Run reads.")
@cloud_run_endpoint_option
@click.pass_context
def check(ctx, project, region, service, revision, allow, as_json, deadline, cloud_run_endpoint) -> None:
    """Pre-deploy gate: compare a revision with the one it replaces and fail on risky changes.

    The candidate (default: the service's latest created revision) is compared with the
    revision serving traffic now; when the candidate already serves, with the newest Ready
    revision before it.
    """
    from watchdog.core import precheck
    from watchdog.core import traffic as rules

    unknown = sorted(set(allow) - set(precheck.RULES))
    if unknown:
        raise click.UsageError(f"unknown rule(s) for --allow: {', '.join(unknown)}; rules: {', '.join(precheck.RULES)}")
    ref = target(ctx)
    config = load_config(cloud_run_endpoint=cloud_run_endpoint)
    client = cloud_run(config.cloud_run_endpoint)
    until = time.monotonic() + deadline
    with waiting(f"reading {ref} and its revisions"):
        found, history = api_call(lambda: client.read(ref, until))
    candidate_name = rules.short_name(revision or found.get("latestCreatedRevision", ""))
    if not candidate_name:
        raise CouldNotCheck(f"{ref} has no revision")
    serving = rules.traffic_split(found)

    def find(name: str) -> int:
        names = [rules.short_name(r.get("name", "")) for r in history.loaded]
        while name not in names and not history.complete:
            api_call(history.read_more)
            names = [rules.short_name(r.get("name", "")) for r in history.loaded]
        return names.index(name) if name in names else -1

    at = find(candidate_name)
    if at < 0:
        raise CouldNotCheck(f"revision {candidate_name} not found in {ref}")
    candidate = history.loaded[at]
    baseline = None
    if serving.get(candidate_name, 0) > 0:
        why = f"newest Ready revision before {candidate_name}, which already serves {serving[candidate_name]}%"
        while baseline is None:
            baseline = next((r for r in history.loaded[at + 1 :] if rules.is_ready(r)), None)
            if baseline is not None or history.complete:
                break
            api_call(history.read_more)
    elif serving:
        name = max(serving.items(), key=lambda kv: kv[1])[0]
        why = f"serving {serving[name]}% now"
        index = find(name)
        baseline = history.loaded[index] if index >= 0 else None
    else:
        why = "no revision serves traffic"
    verdict = precheck.evaluate(baseline, candidate, allow)
    baseline_name = rules.short_name(baseline.get("name", "")) if baseline else ""
    if as_json:
        emit_json(
            {
                "service": str(ref),
                "candidate": candidate_name,
                "baseline": baseline_name or None,
                "baseline_why": why,
                "ok": verdict.ok,
                "findings": [f.as_dict() for f in verdict.findings],
                "changes": [change_json(c) for c in verdict.changes],
            }
        )
    else:
        click.echo(f"{ref}: {candidate_name} (candidate) vs {baseline_name or 'nothing'} ({why})")
        for finding in verdict.findings:
            mark = "ALLOWED" if finding.allowed else finding.severity.upper()
            click.echo(f"  {mark} {finding.rule}: {finding.message}")
        for change in verdict.changes:
            if change.kind == "other":
                click.echo(f"  harmless: {change}")
        if verdict.ok:
            click.echo("OK: no risky change; safe to migrate traffic as far as the watchdog's rules go")
        else:
            rules_hit = sorted({f.rule for f in verdict.findings if f.severity == precheck.FAIL and not f.allowed})
            click.echo(f"RISKY: {', '.join(rules_hit)}. Do not migrate traffic before checking these.")
    sys.exit(0 if verdict.ok else 1)
