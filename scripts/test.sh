#!/usr/bin/env bash
# Every test, Rust and Python: the README's test command (and a step of
# .ci/run).
#
#   1. cargo test --workspace (unit, integration, doc and UI tests, and the
#      golden conformance traces);
#   2. differential conformance against Twisted 26.10: 500 random scripts
#      over Deferred, then 500 over LocalDeferred (conformance/run.py; the
#      first run creates target/conform-venv and pip-installs Twisted, so it
#      needs python3 with venv and network access once);
#   3. the Twisted programs of examples/twisted/ against their recorded
#      transcripts;
#   4. the Twisted bridge's tests against real Twisted (scripts/test-twisted.sh:
#      its own venv under target/, the maturin-built module, trial).
#
# CONFORMANCE_SEED (default 1) picks the conformance scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace"
cargo test --workspace

echo "== differential conformance against Twisted 26.10 (500 scripts)"
python3 conformance/run.py --n 500 --seed "${CONFORMANCE_SEED:-1}"

echo "== the same over LocalDeferred (500 scripts of its ops)"
python3 conformance/run.py --local --n 500 --seed "${CONFORMANCE_SEED:-1}"

echo "== the Twisted programs of examples/twisted/ still print their recorded transcripts"
for name in cancel_walkthrough job_runner; do
  target/conform-venv/bin/python "examples/twisted/$name.py" | diff -u "examples/twisted/$name.txt" -
done

echo "== the Twisted bridge against real Twisted 26.10 (scripts/test-twisted.sh)"
scripts/test-twisted.sh
