#!/usr/bin/env bash
# Runs the loom models of the core state machine (tests/loom.rs).
# LOOM_MAX_PREEMPTIONS bounds the search (default 3 in the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg tokio_deferred_loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test loom "$@"
