"""The project and region gcloud would use, for commands run without ``--project`` / ``--region``.

The same places gcloud reads, in the same order (after the flag, which click handles):

1. ``CLOUDSDK_CORE_PROJECT`` / ``CLOUDSDK_RUN_REGION`` (click's ``envvar``, so
   the error for a bad value names the variable);
2. the active configuration's file: the configuration directory is
   ``$CLOUDSDK_CONFIG``, else ``~/.config/gcloud``; the active configuration is
   ``$CLOUDSDK_ACTIVE_CONFIG_NAME``, else the name in that directory's
   ``active_config`` file, else ``default``; its values are in
   ``configurations/config_NAME``, an INI file (``[core] project = …``,
   ``[run] region = …``).

:func:`configured` only reads files; it never runs gcloud (which may not be
installed, and takes a second to start).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# the gcloud property behind each option: (environment variable, INI section, INI key)
PROPERTIES = {
    "project": ("CLOUDSDK_CORE_PROJECT", "core", "project"),
    "region": ("CLOUDSDK_RUN_REGION", "run", "region"),
}


@dataclass(frozen=True)
class Configured:
    value: str
    source: str  # where it was found, for the "project: P (from …)" line; "" when not found


def config_dir(env: Mapping[str, str]) -> Path:
    given = env.get("CLOUDSDK_CONFIG", "").strip()
    return Path(given).expanduser() if given else Path(env.get("HOME") or Path.home()) / ".config" / "gcloud"


def active_configuration(env: Mapping[str, str]) -> str:
    named = env.get("CLOUDSDK_ACTIVE_CONFIG_NAME", "").strip()
    if named:
        return named
    try:
        return (config_dir(env) / "active_config").read_text().strip() or "default"
    except OSError:
        return "default"


def configured(option: str, env: Mapping[str, str] | None = None) -> Configured:
    """``option`` ("project" or "region") from the active gcloud configuration file, or an empty value."""
    env = os.environ if env is None else env
    _variable, section, key = PROPERTIES[option]
    name = active_configuration(env)
    path = config_dir(env) / "configurations" / f"config_{name}"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except (OSError, UnicodeDecodeError, configparser.Error):
        return Configured("", "")
    value = parser.get(section, key, fallback="").strip()
    return (
        Configured(value, f"gcloud configuration {name!r}, {section}/{key} in {path}") if value else Configured("", "")
    )


def how_to_set(option: str) -> str:
    """What a user can do when no value was found anywhere."""
    variable, section, key = PROPERTIES[option]
    prop = key if section == "core" else f"{section}/{key}"
    return f"give --{option}, set {variable}, or run `gcloud config set {prop} VALUE`"
