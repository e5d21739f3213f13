"""``make bench``: run every figure, print the table, write bench-results.json at the repository root.

``python -m tests.bench [--quick] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import psutil

from tests.bench import card, cold_click, field_revert, figures, sentinel
from tests.bench.harness import cloud_run_standin, compile_sources
from tests.standins.slack import SlackStandIn
from tests.support import ROOT

RESULTS = ROOT / "bench-results.json"
SUITES = {
    "cold": figures.cold_start,
    "warm": figures.warm_critical_path,
    "history": figures.history_scaling,
    "storm": figures.storm,
    "storm_latency": lambda api, slack: figures.storm(api, slack, latency=0.05),
    "deploys": sentinel.deploy_warnings,
    "isolation": sentinel.alert_isolation,
    "card": card.card_figures,
    "cold_click": cold_click.click_figures,
    "field_revert": field_revert.field_revert_figures,
}


def table(results: list[dict]) -> str:
    rows = [("figure", "value", "goal", "met", "baseline", "unit")]
    for r in results:
        rows.append(
            (
                r["name"],
                str(r["value"]),
                str(r["goal"]),
                "yes" if r["met"] else "NO",
                str(r.get("baseline", "")),
                r["unit"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for number, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)))
        if number == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 4)
    return "\n".join(lines)


def history_table(result: dict) -> str:
    keys = list(result["detail"]["cases"][0])
    lines = [" | ".join(keys)]
    for case in result["detail"]["cases"]:
        lines.append(" | ".join(str(case[k]) for k in keys))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    args = parser.parse_args()
    chosen = args.only or list(SUITES)
    results: list[dict] = []
    started = time.monotonic()
    compile_sources()
    api = cloud_run_standin({}).start()
    slack = SlackStandIn().start()
    try:
        for name in chosen:
            t0 = time.monotonic()
            print(f"… {name}", flush=True)
            results += SUITES[name](api, slack)
            print(f"  {name}: {time.monotonic() - t0:.1f}s", flush=True)
    finally:
        slack.stop()
        api.stop()
    report = {
        "machine": {
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds": round(time.monotonic() - started, 1),
        "figures": results,
    }
    RESULTS.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print()
    print(table(results))
    history = next((r for r in results if r["name"] == "history_scaling"), None)
    if history:
        print()
        print(history_table(history))
    missed = [r["name"] for r in results if not r["met"]]
    print()
    print(
        f"wrote {RESULTS.relative_to(ROOT)} in {report['seconds']}s; "
        + (f"missed: {', '.join(missed)}" if missed else "all goals met")
    )


if __name__ == "__main__":
    main()
