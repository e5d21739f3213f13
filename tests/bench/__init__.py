"""Benchmarks: ``make bench`` (``python -m tests.bench``). Not part of ``make test``.

They run the real functions-framework server against the in-process Cloud Run
and Slack stand-ins with injected per-call latency, print a table and write
``bench-results.json`` at the repository root. See ``docs/performance.md``.
"""
