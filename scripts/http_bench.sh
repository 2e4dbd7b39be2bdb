#!/usr/bin/env bash
# The HTTP benchmark of BENCHMARKS.md: Twisted Web's DelayedResource
# (examples/delayed_resource.rs) under a closed-loop load on 127.0.0.1,
# against the same hyper server on plain tokio::time::sleep and against the
# document's twisted.web server on Twisted 26.10. One load generator for
# all three (benches/http/main.rs). Prints Markdown tables on stdout.
#
#   scripts/http_bench.sh                  # about 8 minutes on 2 cores
#   ROUNDS=1 RSS_SECONDS=20 scripts/http_bench.sh   # a quick look
#
# Settings (environment): DELAY_MS (10), CONNECTIONS ("100 1000"),
# RUN_SECONDS (10, counted, after WARMUP=2 s), ROUNDS (3: every server at
# every level, in turn, each round; the tables give the medians),
# RSS_SECONDS (60: one more run per server at the highest level, RSS sampled
# every second), SERVERS ("deferred tokio twisted"), CLIENT_THREADS (the
# load generator's workers, default one per core).
#
# Every run starts a fresh server process. The Twisted server needs the
# venv of the conformance runner (target/conform-venv, created here with
# twisted==26.10.0 from PyPI if missing). Raw results: target/http_bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

DELAY_MS=${DELAY_MS:-10}
CONNECTIONS=${CONNECTIONS:-"100 1000"}
RUN_SECONDS=${RUN_SECONDS:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
RSS_SECONDS=${RSS_SECONDS:-60}
SERVERS=${SERVERS:-"deferred tokio twisted"}
CLIENT_THREADS=${CLIENT_THREADS:-$(nproc)}

OUT=target/http_bench
mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: > "$RUNS"

cargo build --release --quiet --example http_bench
BIN=target/release/examples/http_bench

VENV=target/conform-venv
PY="$VENV/bin/python"
if [[ " $SERVERS " == *" twisted "* ]]; then
  if ! "$PY" -c 'import twisted, sys; sys.exit(twisted.__version__ != "26.10.0")' 2>/dev/null; then
    echo "creating $VENV with twisted==26.10.0 ..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "twisted==26.10.0"
  fi
fi

# Raise the open-file limit for the 1,000-connection runs if we may.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=
ADDR=
start_server() {
  local kind=$1
  rm -f "$OUT/server.out"
  case "$kind" in
    deferred|tokio) "$BIN" serve "$kind" "$DELAY_MS" > "$OUT/server.out" 2>&1 & ;;
    twisted) "$PY" benches/http/delayed_resource.py "$DELAY_MS" > "$OUT/server.out" 2>&1 & ;;
    *) echo "unknown server $kind" >&2; exit 2 ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    ADDR=$(sed -n 's|^listening on http://\(.*\)/$|\1|p' "$OUT/server.out" 2>/dev/null || true)
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "server $kind did not start:" >&2
  cat "$OUT/server.out" >&2
  exit 1
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

run() {  # kind connections seconds warmup label
  start_server "$1"
  "$BIN" load "$ADDR" "$2" "$3" --warmup "$4" --pid "$SERVER_PID" --label "$5" \
    --threads "$CLIENT_THREADS" --json "$RUNS" >&2
  stop_server
}

for round in $(seq "$ROUNDS"); do
  for c in $CONNECTIONS; do
    for kind in $SERVERS; do
      echo "round $round: $kind, $c connections" >&2
      run "$kind" "$c" "$RUN_SECONDS" "$WARMUP" "$kind"
    done
  done
done
top=$(echo "$CONNECTIONS" | tr ' ' '\n' | sort -n | tail -1)
for kind in $SERVERS; do
  echo "RSS run: $kind, $top connections, $RSS_SECONDS s" >&2
  run "$kind" "$top" "$RSS_SECONDS" 0 "$kind rss"
done

python3 - "$RUNS" "$DELAY_MS" "$RUN_SECONDS" "$ROUNDS" "$RSS_SECONDS" "$CLIENT_THREADS" <<'PY'
import json, statistics, sys
path, delay, seconds, rounds, rss_seconds, threads = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
names = {"deferred": "tokio-deferred (`defer_later` + callback)",
         "tokio": "hyper + `tokio::time::sleep`",
         "twisted": "twisted.web (Twisted 26.10, CPython)"}
load = [r for r in runs if not r["label"].endswith(" rss")]
rss = [r for r in runs if r["label"].endswith(" rss")]
med = statistics.median
rows = {}
for r in load:
    rows.setdefault((r["label"], r["connections"]), []).append(r)
print("| server | connections | requests/s | p50 | p99 | server peak RSS | server CPU | server CPU per request |")
print("|---|---|---|---|---|---|---|---|")
order = sorted(rows, key=lambda k: (k[1], list(names).index(k[0]) if k[0] in names else 9))
agg = {}
for key in order:
    rs = rows[key]
    a = {"rps": med(x["rps"] for x in rs), "p50": med(x["p50_ms"] for x in rs),
         "p99": med(x["p99_ms"] for x in rs), "peak": max(x["peak_kib"] for x in rs) / 1024,
         "cpu": med(x["cpu"] for x in rs if x["cpu"] is not None) if any(x["cpu"] is not None for x in rs) else float("nan"),
         "errors": sum(x["errors"] for x in rs)}
    agg[key] = a
    err = f" ({a['errors']} errors)" if a["errors"] else ""
    print(f"| {names.get(key[0], key[0])} | {key[1]:,} | {a['rps']:,.0f}{err} | {a['p50']:.1f} ms | {a['p99']:.1f} ms "
          f"| {a['peak']:.1f} MiB | {a['cpu'] * 100:.0f} % | {a['cpu'] / a['rps'] * 1e6:.1f} µs |")
print()
print(f"Delay {delay} ms; {seconds} s counted per run after a warm-up; medians of {rounds} rounds "
      f"(peak RSS: the highest); load generator: `http_bench load`, {threads} threads. Server CPU: "
      "user + system time in the counted seconds, 100 % = one core (each server runs on one thread).")
print()
print("| connections | tokio-deferred / Tokio: requests/s | p99 | tokio-deferred / Twisted: requests/s | Twisted / tokio-deferred: CPU per request |")
print("|---|---|---|---|---|")
for c in sorted({k[1] for k in agg}):
    d, t, w = agg.get(("deferred", c)), agg.get(("tokio", c)), agg.get(("twisted", c))
    cells = [f"{d['rps'] / t['rps']:.2f}x (target ≥ 0.95x)" if d and t else "—",
             f"{d['p99'] / t['p99']:.2f}x (target ≤ 1.1x)" if d and t else "—",
             f"{d['rps'] / w['rps']:.1f}x (target ≥ 10x)" if d and w else "—",
             f"{(w['cpu'] / w['rps']) / (d['cpu'] / d['rps']):.1f}x" if d and w else "—"]
    print(f"| {c:,} | {' | '.join(cells)} |")
if rss:
    print()
    print(f"| server ({rss[0]['connections']:,} connections, {rss_seconds} s) | RSS at 10 s | at the end | highest after 10 s | growth after 10 s |")
    print("|---|---|---|---|---|")
    for r in rss:
        s = [k / 1024 for k in r["rss_kib"]]
        if len(s) <= 10:
            continue
        after = s[10:]
        print(f"| {names.get(r['label'][:-4], r['label'])} | {s[10]:.1f} MiB | {s[-1]:.1f} MiB | {max(after):.1f} MiB "
              f"| {(max(after) - s[10]) / s[10] * 100:+.1f} % |")
PY
