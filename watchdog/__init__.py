"""The project's own Cloud Run rollback watchdog (not the PyPI package of the same name)."""

__rollback_watchdog__ = True
__version__ = "0.2.0"  # pyproject.toml and CHANGELOG.md say the same (tests/test_version.py)
