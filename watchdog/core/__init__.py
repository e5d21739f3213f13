"""The pure core: values in, decisions with their reasons out.

No client, no clock, no environment: callers pass the alert, the service and
its revisions, the configuration and the time (tests/test_layout.py enforces
that nothing here imports a client). Where to start reading:

- ``decision.decide``: the rules for an alert, in the order they win;
- ``rollback_target.choose``: the rule that picks the known-good revision;
- ``traffic.rollback_traffic``: the traffic list a rollback sends (tags kept);
- ``changes``: the revision diff, egress first; ``ledger``: what the watchdog
  remembers in the service's annotations.
"""
