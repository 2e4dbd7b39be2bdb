#!/usr/bin/env bash
# Runs the loom models of the core state machine (tests/loom.rs).
# LOOM_MAX_PREEMPTIONS bounds the search (default 3 in the tests). A debug
# build: the models are small, and it compiles much faster than --release.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg tokio_deferred_loom" CARGO_TARGET_DIR=target/loom \
  cargo test --test loom "$@"
