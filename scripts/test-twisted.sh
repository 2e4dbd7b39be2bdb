#!/usr/bin/env bash
# The Twisted bridge (tokio-deferred-twisted) against real Twisted:
#  1. a venv under target/ with Twisted 26.10 and maturin from PyPI (made
#     once, reused while it has them);
#  2. the demo extension module built into it with maturin;
#  3. the Python tests (twisted.trial, default reactor): both directions,
#     cancellation, errors, contextvars, the GIL-free path, 10,000 round
#     trips for leaks, a reactor stopped with work in flight (subprocess),
#     the twisted.web example over HTTP;
#  4. the Rust tests of the crate with an embedded interpreter that
#     imports Twisted from the venv.
# Usage: scripts/test-twisted.sh [trial test names...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/target/twisted-venv
PY=$VENV/bin/python
TWISTED=26.10.0

if ! "$PY" -c "import sys, twisted; sys.exit(twisted.__version__ != '$TWISTED')" 2>/dev/null \
  || [ ! -x "$VENV/bin/maturin" ]; then
  echo "== creating $VENV (twisted==$TWISTED, maturin)"
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "twisted==$TWISTED" "maturin>=1.16,<2"
fi

echo "== maturin develop (tokio-deferred-twisted/demo)"
VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH \
  "$VENV/bin/maturin" develop -q -j 2 -m tokio-deferred-twisted/demo/Cargo.toml

echo "== Python tests (twisted.trial)"
# Panicking on purpose is part of the tests: keep the panic messages short.
export RUST_BACKTRACE=0
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(test_rust_to_twisted test_twisted_to_rust test_cancel test_unhandled
    test_memory_reactor test_leaks test_shutdown test_example)
fi
(cd tokio-deferred-twisted/python-tests &&
  "$PY" -m twisted.trial --temp-directory "$ROOT/target/_trial_temp" "${tests[@]}")

echo "== Rust tests with an embedded interpreter"
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
PYTHONPATH=$SITE TOKIO_DEFERRED_TWISTED_REQUIRE_PYTHON=1 \
  cargo test -j2 -p tokio-deferred-twisted
