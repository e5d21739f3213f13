#!/usr/bin/env bash
# Create (or refresh) the separate checkov virtualenv used by
# tests/terraform/test_checkov.py. Idempotent: does nothing when the pinned
# version is already installed. Needs only PyPI.
#
#   bash tests/terraform/setup.sh            # creates .venv-checkov at the repo root
#   CHECKOV_VENV=/some/dir bash tests/terraform/setup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CHECKOV_VENV:-$root/.venv-checkov}"
reqs="$here/requirements-checkov.txt"
python="${PYTHON:-python3}"
want="$(sed -n 's/^checkov==\([^[:space:]]*\).*/\1/p' "$reqs")"

if [ -x "$venv/bin/checkov" ] && [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null)" = "$want" ]; then
  echo "checkov $want already installed in $venv"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
echo "checkov $("$venv/bin/checkov" --version) installed in $venv"
