#!/usr/bin/env bash
# Runs LocalDeferred's tests under valgrind's memcheck: the check of the
# arena's `unsafe` code (src/local/{header,arena,state,runner}.rs) for
# invalid reads and writes, uses of uninitialised memory, bad frees and
# definite leaks. It runs:
#   * tests/local.rs, with its "million" sizes cut to MEMCHECK_MANY
#     (default 100000);
#   * tests/local_plans.rs, MEMCHECK_CASES randomized operation plans
#     (default 1000) checked against its model;
#   * the LocalDeferred conformance scripts of tests/conformance.rs
#     (golden_traces_match_twisted_local).
# About a minute and a half on 2 cores with the defaults, after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# The test binaries (debug, as `cargo test` builds them).
bins=$(cargo test --no-run --message-format=json \
  --test local --test local_plans --test conformance |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
')
bin() { awk -v n="$1" '$1 == n { print $2 }' <<<"$bins"; }

memcheck() {
  valgrind --tool=memcheck --quiet --error-exitcode=1 \
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    "$@"
}

export TOKIO_DEFERRED_MANY="${MEMCHECK_MANY:-100000}"
export PROPTEST_CASES="${MEMCHECK_CASES:-1000}"

echo "== memcheck: tests/local.rs (many = $TOKIO_DEFERRED_MANY)"
# The skipped test leaks by construction (an Rc cycle made by user code).
memcheck "$(bin local)" --test-threads=1 -q \
  --skip cancelling_deferreds_that_wait_on_each_other_returns

echo "== memcheck: tests/local_plans.rs ($PROPTEST_CASES plans)"
memcheck "$(bin local_plans)" --test-threads=1 -q

echo "== memcheck: LocalDeferred conformance scripts"
memcheck "$(bin conformance)" --test-threads=1 -q --exact golden_traces_match_twisted_local
