#!/usr/bin/env bash
# Runs tests/local.rs under Miri: a check of LocalDeferred's arena
# (src/local/{header,arena,state,runner}.rs, the crate's only `unsafe`
# code) for undefined behaviour, aliasing included. Needs a nightly
# toolchain with the miri component:
#   rustup component add --toolchain nightly miri rust-src
# The tests shrink their "many" sizes under Miri (cfg!(miri)). Isolation is
# off because the unhandled-failure tests format a timestamp. Pass
# TREE_BORROWS=1 to use the Tree Borrows model instead of Stacked Borrows.
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-Zmiri-disable-isolation"
if [ "${TREE_BORROWS:-0}" = 1 ]; then flags="$flags -Zmiri-tree-borrows"; fi
MIRIFLAGS="$flags" cargo +nightly miri test --test local "$@"
