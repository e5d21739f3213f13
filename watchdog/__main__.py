import watchdog

if not getattr(watchdog, "__rollback_watchdog__", False):
    raise SystemExit(f"python -m watchdog: {watchdog.__file__} is not the rollback watchdog; run it from its repo root")
from watchdog.tools.cli import main

main()
