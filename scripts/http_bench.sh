#!/usr/bin/env bash
# The HTTP benchmark of BENCHMARKS.md: Twisted Web's DelayedResource
# (examples/delayed_resource.rs) under a closed-loop load on 127.0.0.1,
# against the same hyper server on plain tokio::time::sleep and against the
# document's twisted.web server on Twisted 26.10. One load generator for
# all three (benches/http/main.rs). Prints Markdown tables on stdout.
#
#   scripts/http_bench.sh                  # about 14 minutes on 2 cores
#   ROUNDS=1 RSS_SECONDS=40 SATURATE_MS= scripts/http_bench.sh   # a quick look
#
# Settings (environment): DELAY_MS (10), CONNECTIONS ("100 1000"),
# SATURATE_MS (1: one more level, the highest CONNECTIONS with this delay,
# where the servers, not the delay, set the pace; empty: none),
# RUN_SECONDS (10, counted, after WARMUP=2 s), ROUNDS (3: every server at
# every level, in turn, each round; the tables give the medians),
# RSS_SECONDS (120: one more run per server at the highest level, RSS
# sampled every second; SETTLE=30 s of it count as warm-up), RSS_CONTROL
# ("tokio-alloc": the plain-Tokio server holding, per request, heap blocks
# of the sizes tokio-deferred's request allocates; run in the RSS run
# only; empty: none), SERVERS ("deferred tokio twisted"), SERVER_CPU (the
# core every server is pinned to: the last one), CLIENT_CPUS (the load
# generator's cores: the others), CLIENT_THREADS (the generator's workers:
# one per client core).
#
# Every run starts a fresh server process. The server and the load
# generator are pinned to different cores (taskset), so the generator never
# takes CPU time from the server it measures. The Twisted server needs the
# venv of the conformance runner (target/conform-venv, created here with
# twisted==26.10.0 from PyPI if missing). Raw results: target/http_bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

DELAY_MS=${DELAY_MS:-10}
CONNECTIONS=${CONNECTIONS:-"100 1000"}
RUN_SECONDS=${RUN_SECONDS:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
SATURATE_MS=${SATURATE_MS-1}
RSS_SECONDS=${RSS_SECONDS:-120}
SETTLE=${SETTLE:-30}
SERVERS=${SERVERS:-"deferred tokio twisted"}
RSS_CONTROL=${RSS_CONTROL-tokio-alloc}
CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then
  SERVER_CPU=${SERVER_CPU:-$((CORES - 1))}
  CLIENT_CPUS=${CLIENT_CPUS:-0-$((CORES - 2))}
  CLIENT_THREADS=${CLIENT_THREADS:-$((CORES - 1))}
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_CLIENT=(taskset -c "$CLIENT_CPUS")
else
  CLIENT_THREADS=${CLIENT_THREADS:-1}
  PIN_SERVER=()
  PIN_CLIENT=()
  echo "one core: the server and the load generator share it" >&2
fi

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
start_server() {  # kind delay_ms
  local kind=$1 delay=$2
  rm -f "$OUT/server.out"
  case "$kind" in
    deferred|tokio|tokio-alloc) "${PIN_SERVER[@]}" "$BIN" serve "$kind" "$delay" > "$OUT/server.out" 2>&1 & ;;
    twisted) "${PIN_SERVER[@]}" "$PY" benches/http/delayed_resource.py "$delay" > "$OUT/server.out" 2>&1 & ;;
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

run() {  # kind delay_ms connections seconds warmup label
  start_server "$1" "$2"
  "${PIN_CLIENT[@]}" "$BIN" load "$ADDR" "$3" "$4" --warmup "$5" --pid "$SERVER_PID" \
    --label "$6" --delay-ms "$2" --threads "$CLIENT_THREADS" --json "$RUNS" >&2
  stop_server
}

top=$(echo "$CONNECTIONS" | tr ' ' '\n' | sort -n | tail -1)
for round in $(seq "$ROUNDS"); do
  for c in $CONNECTIONS; do
    for kind in $SERVERS; do
      echo "round $round: $kind, $c connections, $DELAY_MS ms" >&2
      run "$kind" "$DELAY_MS" "$c" "$RUN_SECONDS" "$WARMUP" "$kind"
    done
  done
  if [ -n "$SATURATE_MS" ]; then
    for kind in $SERVERS; do
      echo "round $round: $kind, $top connections, $SATURATE_MS ms" >&2
      run "$kind" "$SATURATE_MS" "$top" "$RUN_SECONDS" "$WARMUP" "$kind"
    done
  fi
done
for kind in $SERVERS $RSS_CONTROL; do
  echo "RSS run: $kind, $top connections, $RSS_SECONDS s" >&2
  run "$kind" "$DELAY_MS" "$top" "$RSS_SECONDS" 0 "$kind rss"
done

python3 - "$RUNS" "$DELAY_MS" "$RUN_SECONDS" "$ROUNDS" "$RSS_SECONDS" "$CLIENT_THREADS" "$SETTLE" <<'PY'
import json, statistics, sys
path, delay, seconds, rounds, rss_seconds, threads, settle = sys.argv[1:]
settle = int(settle)
runs = [json.loads(l) for l in open(path)]
names = {"deferred": "tokio-deferred (`defer_later` + callback)",
         "tokio": "hyper + `tokio::time::sleep`",
         "tokio-alloc": "hyper + `tokio::time::sleep`, holding 3 blocks per request (control)",
         "twisted": "twisted.web (Twisted 26.10, CPython)"}
load = [r for r in runs if not r["label"].endswith(" rss")]
rss = [r for r in runs if r["label"].endswith(" rss")]
med = statistics.median
rows = {}
for r in load:
    rows.setdefault((r["delay_ms"], r["connections"], r["label"]), []).append(r)
print("| server | delay | connections | requests/s | p50 | p99 | server peak RSS | server CPU | server CPU per request |")
print("|---|---|---|---|---|---|---|---|---|")
order = sorted(rows, key=lambda k: (-k[0], k[1], list(names).index(k[2]) if k[2] in names else 9))
agg = {}
for key in order:
    rs = rows[key]
    a = {"rps": med(x["rps"] for x in rs), "p50": med(x["p50_ms"] for x in rs),
         "p99": med(x["p99_ms"] for x in rs), "peak": max(x["peak_kib"] for x in rs) / 1024,
         "cpu": med(x["cpu"] for x in rs if x["cpu"] is not None) if any(x["cpu"] is not None for x in rs) else float("nan"),
         "errors": sum(x["errors"] for x in rs)}
    agg[key] = a
    err = f" ({a['errors']} errors)" if a["errors"] else ""
    print(f"| {names.get(key[2], key[2])} | {key[0]:g} ms | {key[1]:,} | {a['rps']:,.0f}{err} | {a['p50']:.1f} ms | {a['p99']:.1f} ms "
          f"| {a['peak']:.1f} MiB | {a['cpu'] * 100:.0f} % | {a['cpu'] / a['rps'] * 1e6:.1f} µs |")
print()
print(f"{seconds} s counted per run after a warm-up; medians of {rounds} rounds "
      f"(peak RSS: the highest); load generator: `http_bench load`, {threads} thread(s) on its own core(s). "
      "Server CPU: user + system time in the counted seconds, 100 % = one core (each server runs on one thread, "
      "pinned to one core).")
print()
# Ratios pair the servers' runs of the same round (they ran back to back),
# so a drift of the machine's speed between rounds cancels out: the median
# of the rounds' ratios, and their range.
def ratio(key_a, key_b, value):
    a, b = rows.get(key_a), rows.get(key_b)
    if not a or not b:
        return None
    rs = [value(x) / value(y) for x, y in zip(a, b)]
    return med(rs), min(rs), max(rs)
rps = lambda r: r["rps"]
p99 = lambda r: r["p99_ms"]
cpu_per_request = lambda r: r["cpu"] / r["rps"]
def cell(r, digits, target=""):
    if r is None:
        return "—"
    m, lo, hi = r
    return f"{m:.{digits}f}x ({lo:.{digits}f}–{hi:.{digits}f}){target}"
print("| delay | connections | at most (connections / delay) | tokio-deferred / Tokio: requests/s | p99 | tokio-deferred / Twisted: requests/s | Tokio / Twisted: requests/s | Twisted / tokio-deferred: CPU per request |")
print("|---|---|---|---|---|---|---|---|")
for delay_ms, c in sorted({k[:2] for k in agg}, key=lambda k: (-k[0], k[1])):
    d, t, w = ((delay_ms, c, kind) for kind in ("deferred", "tokio", "twisted"))
    cells = [f"{c / (delay_ms / 1000):,.0f}/s",
             cell(ratio(d, t, rps), 2, " (target ≥ 0.95x)"),
             cell(ratio(d, t, p99), 2, " (target ≤ 1.1x)"),
             cell(ratio(d, w, rps), 1, " (target ≥ 10x)"),
             cell(ratio(t, w, rps), 1),
             cell(ratio(w, d, cpu_per_request), 1)]
    print(f"| {delay_ms:g} ms | {c:,} | {' | '.join(cells)} |")
print()
print("Ratios: the median of the rounds' ratios (each round runs the servers back to back), and their range.")
if rss:
    print()
    late = 60 if int(rss_seconds) > 60 else settle
    print(f"| server ({rss[0]['connections']:,} connections, {rss[0]['delay_ms']:g} ms, {rss_seconds} s) "
          f"| RSS at 10 s | at {settle} s | at the end | growth after 10 s | after {settle} s | after {late} s |")
    print("|---|---|---|---|---|---|---|")
    for r in rss:
        s = [k / 1024 for k in r["rss_kib"]]
        if len(s) <= late:
            continue
        grow = lambda i: (max(s[i:]) - s[i]) / s[i] * 100
        print(f"| {names.get(r['label'][:-4], r['label'])} | {s[10]:.1f} MiB | {s[settle]:.1f} MiB | {s[-1]:.1f} MiB "
              f"| {grow(10):+.1f} % | {grow(settle):+.1f} % | {grow(late):+.1f} % |")
PY
