"""The entry flows: each a small shell that reads, calls the core, acts through the edges and reports.

``delivery.Watchdog.handle`` takes every Pub/Sub delivery, parses it
(core.intake) and routes it: an alert to ``alerts`` (and ``rollback`` when the
decision moves traffic), a deploy event to ``deploy_events``, a verification
tick to ``ticks``/``verdicts``, anything else to ``acknowledged``. The Slack
card's buttons come in through ``slack_actions``, drills through ``drills``.
``app`` wires them from the environment once per process.
"""
