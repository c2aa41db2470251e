#!/usr/bin/env bash
# Install what the tests need, then run them. This is the README's test command;
# .ci/run runs exactly this too.
#
#   scripts/test.sh                  # the whole suite
#   scripts/test.sh tests/unit -x    # arguments go to pytest
#
# - Debian packages (scripts/system-packages.txt: nginx, OpenSSH server, certbot, pebble,
#   openssl, prometheus, prometheus-blackbox-exporter) are installed with apt-get when one of their programs is missing, or always
#   with FORCE_APT=1 (as root, else through sudo).
# - Python: a venv in .venv (VENV=... to change) with `pip install -e . --group test`
#   (pip >= 25.1 understands dependency groups; older pips get the group's packages listed).
# - Exit status is pytest's, except that "no tests collected" (pytest's 5) is a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
GROUP="${PIP_GROUP:-test}"
mapfile -t PACKAGES < <(grep -Ev '^\s*(#|$)' scripts/system-packages.txt)

# program -> package that provides it
declare -A PROVIDES=(
  [nginx]=nginx
  [sshd]=openssh-server
  [ssh-keygen]=openssh-server
  [certbot]=certbot
  [pebble]=pebble
  [pebble-challtestsrv]=pebble
  [openssl]=openssl
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
for program in "${!PROVIDES[@]}"; do
  have "$program" || missing+=("${PROVIDES[$program]}")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${FORCE_APT:-0}" = 1 ]; then
  [ "${#missing[@]}" -gt 0 ] && echo "scripts/test.sh: installing Debian packages (missing: ${missing[*]})"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "scripts/test.sh: need root or sudo to apt-get install ${PACKAGES[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=300 update
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y "${PACKAGES[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_has_groups() {
  "$PY" - <<'PYCODE'
import sys
from importlib.metadata import version
major, minor = (int(x) for x in version("pip").split(".")[:2])
sys.exit(0 if (major, minor) >= (25, 1) else 1)
PYCODE
}
pip_has_groups || "$PY" -m pip install --quiet --upgrade "pip>=25.1" || true
if pip_has_groups; then
  "$PY" -m pip install --quiet -e . --group "$GROUP"
else
  # Fallback: list the group's requirements from pyproject.toml (include-group resolved).
  mapfile -t REQS < <("$PY" - "$GROUP" <<'PYCODE'
import sys, tomllib
groups = tomllib.load(open("pyproject.toml", "rb"))["dependency-groups"]
def expand(name, seen=()):
    for item in groups[name]:
        if isinstance(item, dict):
            if item["include-group"] not in seen:
                yield from expand(item["include-group"], (*seen, name))
        else:
            yield item
print("\n".join(dict.fromkeys(expand(sys.argv[1]))))
PYCODE
  )
  "$PY" -m pip install --quiet -e . "${REQS[@]}"
fi

set +e
"$PY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
