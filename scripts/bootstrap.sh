#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine, idempotently:
#   .venv   Python 3 (gateway, tools, tox), pinned by constraints/py3.txt
#   .venv2  Python 2.7 (protocol library, py2 services), pinned by constraints/py27.txt
#   redis-server and jq (and with --test: wrk, chromium, chromedriver), through apt
#   when missing, and what the compiled broker is built with: gcc, make, pkg-config,
#   libzmq3-dev
#   build/gateway-broker  the compiled broker, rebuilt when a source is newer
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

# System packages from apt, installed only when missing: what `make up` needs, plus
# (with --test) what the test suite drives: wrk (reload under load, benchmarks), nginx
# (the benchmarks' baselines), Chromium with chromedriver (the browser walkthrough) and
# Prometheus (the metrics test scrapes a running estate with a real server), curl
# (the README's own-estate walkthrough, which a test runs as written), and HAProxy (the
# load balancer in front of two gateway hosts in the multi-host test; iproute2 gives it
# the network namespaces).
# jq is for examples/queue-consumer.sh. The compiled broker (gateway/broker/native) is
# C against libzmq, built with make.
ensure_packages() {
  local wanted="redis-server:redis-server redis-cli:redis-tools jq:jq" missing="" pair
  wanted="$wanted cc:gcc make:make pkg-config:pkg-config"
  [ "$MODE" = test ] && wanted="$wanted curl:curl wrk:wrk nginx:nginx chromium:chromium chromedriver:chromium-driver prometheus:prometheus haproxy:haproxy ip:iproute2"
  for pair in $wanted; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
  done
  { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libzmq; } \
    || missing="$missing libzmq3-dev"
  if [ -n "$missing" ]; then
    say "installing with apt:$missing"
    local sudo="" had_redis="" had_nginx="" had_prometheus="" had_haproxy=""
    command -v redis-server >/dev/null 2>&1 && had_redis=1
    command -v nginx >/dev/null 2>&1 && had_nginx=1
    command -v prometheus >/dev/null 2>&1 && had_prometheus=1
    command -v haproxy >/dev/null 2>&1 && had_haproxy=1
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || die "apt-get update failed; install by hand:$missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null \
      || die "could not install:$missing (apt-get install$missing)"
    # The packages start system-wide servers; the project starts its own on private ports.
    if [ -z "$had_redis" ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
    if [ -z "$had_nginx" ] && [ "$MODE" = test ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
    if [ -z "$had_prometheus" ] && [ "$MODE" = test ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
    fi
    if [ -z "$had_haproxy" ] && [ "$MODE" = test ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now haproxy >/dev/null 2>&1 || true
    fi
  fi
  # The queues use BLMOVE and LPOS (SPEC section 8).
  redis-server --version | grep -qE 'v=(6\.[2-9]|[7-9]\.|[1-9][0-9]\.)' \
    || die "redis-server 6.2 or newer is needed, found: $(redis-server --version)"
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# The compiled broker: built when missing or older than any of its sources.
build_broker() {
  local bin=build/gateway-broker src=gateway/broker/native
  if [ ! -x "$bin" ] || [ -n "$(find "$src" -type f -newer "$bin" | head -n 1)" ]; then
    say "building $bin"
    make -s -C "$src" OUT="$PWD/$bin" >&2 || die "could not build the compiled broker (make -C $src)"
  fi
}

MODE=${1:-up}  # "up" or "test"

# 3.11 runs the gateway and the lint/typing/integration legs; 3.13 is a test leg.
PY3=$(find_python3 11) || die "no Python 3.11 found; install one with: pyenv install 3.11"
PY2=$(find_python2)
PY313=$(find_python3 13) || { [ "$MODE" != test ] || die "no Python 3.13 found (the py313 tox leg needs it); install one with: pyenv install 3.13"; }

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

ensure_packages

mkdir -p build
build_broker
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
