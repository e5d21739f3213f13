"""The edges: the Cloud Run, Slack and Monitoring clients, and the log lines.

Each is shaped for its caller (a few methods), owns its retries and deadlines
(api_core retries, slack-sdk's retry handlers), and never decides anything.
Edges never import flows or tools.
"""
