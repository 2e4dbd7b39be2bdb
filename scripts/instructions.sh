#!/usr/bin/env bash
# Instruction counts per operation under callgrind (load-independent).
# Usage: scripts/instructions.sh [binary]   (default: builds benches/instructions.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
  bin=$(cargo bench --no-run --bench instructions 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)
fi
count() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
  rm -f "$out"
}
for w in oneshot_send_recv:2000 succeed_take:2000 new_fire_take:2000 oneshot_pending_send_recv:2000 pending_fire_take:2000 \
         callback:2000 chain_10:2000 boxed_fn_10:2000 chain_100:200 ensure_ready:2000 nested_level:2000 gather_elem:10000 gather_base:10000 \
         queue_put_get:2000 lock_acquire_release:2000 semaphore_acquire_release:2000 \
         lock_run:2000 lock_handover:2000 mpsc_send_recv:2000 tokio_mutex:2000 tokio_semaphore:2000; do
  name=${w%%:*} n=${w##*:}
  i0=$(count "$name" 0)
  i1=$(count "$name" "$n")
  echo "$name $(( (i1 - i0) / n ))"
done
