"""The cold-start floor: a functions-framework CloudEvent function that only imports the Cloud Run client."""

import functions_framework
from google.cloud import run_v2  # noqa: F401 - the import is the point: it is in every cold start of the watchdog


@functions_framework.cloud_event
def handle_alert(cloud_event):
    return
