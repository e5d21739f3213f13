"""The project's own Cloud Run rollback watchdog (not the PyPI package of the same name)."""

__rollback_watchdog__ = True
