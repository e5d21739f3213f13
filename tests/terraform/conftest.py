"""tests/terraform helpers (provider_schema, schema_provider, tf_schema_check) import as top-level modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
