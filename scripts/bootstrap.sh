#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine, idempotently:
#   .venv   Python 3 (gateway, tools, tox), pinned by constraints/py3.txt
#   .venv2  Python 2.7 (protocol library, py2 services), pinned by constraints/py27.txt
#   redis-server, through apt when it is missing
#   build/env.sh  the interpreter paths that tox and the tests use
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

works() { [ -n "$1" ] && "$1" -c 'import sys' >/dev/null 2>&1; }

pyenv_root() { command -v pyenv >/dev/null 2>&1 && pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}"; }

# Python 2.7: $PYTHON2, then a working python2.7/python2 on PATH, then pyenv's versions.
find_python2() {
  local c
  if [ -n "${PYTHON2:-}" ]; then
    works "$PYTHON2" || die "PYTHON2=$PYTHON2 does not run"
    command -v "$PYTHON2"; return
  fi
  for c in python2.7 python2; do
    if works "$c" && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      "$c" -c 'import sys; print(sys.executable)'; return
    fi
  done
  for c in "$(pyenv_root)"/versions/2.7*/bin/python; do
    if works "$c"; then echo "$c"; return; fi
  done
  die "no Python 2.7 found. Set PYTHON2=/path/to/python2.7, put python2.7 on PATH, or install one with: pyenv install 2.7.18"
}

# A Python 3.x by minor version: python3.X on PATH (if it works), then pyenv's versions.
find_python3() {
  local minor=$1 c
  if works "python3.$minor"; then "python3.$minor" -c 'import sys; print(sys.executable)'; return; fi
  for c in "$(pyenv_root)"/versions/3."$minor".*/bin/python3; do
    if works "$c"; then echo "$c"; return; fi
  done
  return 1
}

ensure_redis() {
  # jq is for examples/queue-consumer.sh (a bash queue consumer: redis-cli + jq);
  # wrk is the load generator of the arbiter's reload-under-load test.
  if command -v redis-server >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 \
    && command -v wrk >/dev/null 2>&1; then return; fi
  say "installing redis-server, jq and wrk with apt"
  local sudo="" had_redis=""
  command -v redis-server >/dev/null 2>&1 && had_redis=1
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed; install redis-server and jq by hand"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server jq wrk >/dev/null \
    || die "could not install redis-server/jq/wrk; install them by hand (apt-get install redis-server jq wrk)"
  # The package starts a system-wide server; the project starts its own on private ports.
  if [ -z "$had_redis" ] && command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

PY3=$(find_python3 11 || find_python3 12 || find_python3 13 || true)
[ -n "$PY3" ] || die "no Python 3.11+ found; install one with: pyenv install 3.11"
PY2=$(find_python2)
PY313=$(find_python3 13 || true)

want3=$(stamp_of constraints/py3.txt requirements/py3.txt requirements/py3-test.txt requirements/dev.txt)
if [ "$(cat .venv/.stamp 2>/dev/null)" != "$want3" ]; then
  say "creating .venv with $PY3"
  "$PY3" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade 'pip<25' >/dev/null
  .venv/bin/python -m pip install -q -c constraints/py3.txt -r requirements/dev.txt
  .venv/bin/python -m pip install -q --no-deps -e . >/dev/null
  echo "$want3" > .venv/.stamp
fi

want2=$(stamp_of constraints/py27.txt requirements/py27.txt requirements/py27-test.txt)
if [ "$(cat .venv2/.stamp 2>/dev/null)" != "$want2" ]; then
  say "creating .venv2 with $PY2"
  rm -rf .venv2
  .venv/bin/virtualenv -q -p "$PY2" .venv2 >/dev/null
  .venv2/bin/python -m pip install -q --disable-pip-version-check \
    -c constraints/py27.txt -r requirements/py27-test.txt 2>&1 \
    | grep -v -i -e deprecation -e 'python 2.7' -e 'is ignored' >&2 || true
  .venv2/bin/python -c 'import zmq, redis, jsonschema, pytest' || die ".venv2 is incomplete"
  echo "$want2" > .venv2/.stamp
fi

ensure_redis

mkdir -p build
{
  echo "# written by scripts/bootstrap.sh"
  echo "export PYTHON2='$PY2'"
  echo "export GATEWAY_PY2='$PWD/.venv2/bin/python'"
  echo "export GATEWAY_PY3='$PWD/.venv/bin/python'"
  path="$(dirname "$PY2"):$(dirname "$PY3")"
  [ -n "$PY313" ] && path="$path:$(dirname "$PY313")"
  echo "export PATH='$path':\"\$PATH\""
} > build/env.sh
say "ready: .venv ($("$PY3" -V 2>&1)), .venv2 ($("$PY2" -V 2>&1)), $(redis-server --version | cut -d' ' -f1-3)"
