#!/usr/bin/env python3
"""Prints the BENCHMARKS.md tables from criterion's results.

    cargo bench --bench core            # (and any other bench)
    python3 benches/twisted_bench.py    # optional: the Twisted column
    python3 benches/report.py           # Markdown on stdout

On a shared, noisy machine, run the benches several times into criterion
baselines and let the report take, per group, the median over the runs of
each side's median and of the ratio (the range of the ratio is shown):

    for i in 1 2 3; do cargo bench --bench core -- --save-baseline run$i; done
    python3 benches/report.py run1 run2 run3

Each criterion group pairs `<group>/ours[/<param>]` with
`<group>/anchor[/<param>]`. With a throughput (elements), times are also
given per element, and the ratio is per element. Targets live in TARGETS:
a new group adds one line there.

Two revisions, measured alternately into baselines of one criterion
directory (scripts/bench_compare.sh does this), compare with

    python3 benches/report.py --compare a1,a2,a3 b1,b2,b3 [--alias B=A ...]

which prints, per group, our side before and after and the ratio to the
anchor before and after (`--alias` pairs a group of B with a group of A
that measures the same workload under another name).

The criterion directory is target/criterion, or $CRITERION_HOME if set.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.environ.get("CRITERION_HOME") or os.path.join(ROOT, "target", "criterion")
TWISTED = os.path.join(ROOT, "target", "twisted.json")

# group -> (max ratio ours/anchor, extra check, description of the target)
# extra check: None, or ("max_ns_per_elem", n) / ("twisted_speedup", n) /
# ("max_slowest_sample", n): our slowest sample at most n times our median one
TARGETS = {
    "new_fire_await": (1.5, None, "≤ 1.5x"),
    "await_pending_then_fire": (1.5, None, "≤ 1.5x"),
    "fire_across_tasks": (1.2, None, "≤ 1.2x"),
    "chain_10": (1.3, ("twisted_speedup", 15), "≤ 1.3x per callback; ≥ 15x faster than Twisted"),
    "chain_100": (1.3, ("twisted_speedup", 15), "≤ 1.3x per callback; ≥ 15x faster than Twisted"),
    "chain_10_local": (1.3, ("twisted_speedup", 15), "≤ 1.3x per callback; ≥ 15x faster than Twisted"),
    "chain_100_local": (1.3, ("twisted_speedup", 15), "≤ 1.3x per callback; ≥ 15x faster than Twisted"),
    "new_fire_await_local": (None, None, "(information)"),
    "nested_chain_fire": (1.5, ("max_ns_per_elem", 100), "per level ≤ 1.5x of 1,000-deep, ≤ 100 ns/level"),
    "nested_chain_build_fire_drop": (None, None, "(information)"),
    "ensure_deferred_ready": (2.0, None, "≤ 2x"),
    "gather_results_10000": (0.5, None, "≤ 0.5x"),
    "gather_results_10000_no_runtime": (None, None, "(information)"),
    "deferred_queue_put_get": (1.5, None, "≤ 1.5x"),
    "deferred_semaphore_acquire_release": (1.5, None, "≤ 1.5x"),
    "deferred_lock_acquire_release": (1.5, None, "≤ 1.5x"),
    "defer_later_100000": (1.2, None, "wall ≤ 1.2x"),
    "defer_to_thread_round_trip": (1.1, None, "≤ 1.1x"),
    "oversubscribed_deferreds": (1.5, ("max_slowest_sample", 3), "≤ 1.5x; slowest sample ≤ 3x median"),
    "oversubscribed_callbacks": (None, None, "(information)"),
    "oversubscribed_queue": (1.5, ("max_slowest_sample", 3), "≤ 1.5x; slowest sample ≤ 3x median"),
}

# group -> key in target/twisted.json (per op, or per level for nested)
TWISTED_KEYS = {
    "new_fire_await": "new_fire_take",
    "chain_10": "chain_10",
    "chain_100": "chain_100",
    "chain_10_local": "chain_10",
    "chain_100_local": "chain_100",
    "nested_chain_fire": "nested_chain_fire/100000 (per level)",
    "nested_chain_build_fire_drop": "nested_chain_build_fire_drop/100000 (per level)",
    "ensure_deferred_ready": "ensure_deferred_ready",
}


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def load(baseline="new"):
    """`{group: {side: {median, elems, param, samples}}}` of one baseline;
    `samples` are the per-iteration times of criterion's samples."""
    groups = {}
    for dirpath, _dirs, files in os.walk(CRITERION):
        if os.path.basename(dirpath) != baseline or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        samples = []
        if "sample.json" in files:
            with open(os.path.join(dirpath, "sample.json")) as f:
                sample = json.load(f)
            samples = [t / i for t, i in zip(sample["times"], sample["iters"]) if i]
        side = meta["function_id"]
        tp = meta.get("throughput") or {}
        elems = tp.get("Elements")
        groups.setdefault(meta["group_id"], {})[side] = {
            "median": est["median"]["point_estimate"],
            "elems": elems,
            "param": meta.get("value_str"),
            "samples": samples,
        }
    return groups


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def merge(runs):
    """One `groups` from several runs: each side's median is the median over
    the runs; `ratios` keeps every run's ratio (per element if needed)."""
    out = {}
    for name in set().union(*runs):
        sides = [r[name] for r in runs if name in r and {"ours", "anchor"} <= r[name].keys()]
        if not sides:
            continue
        g = {}
        for side in ("ours", "anchor"):
            g[side] = dict(sides[0][side])
            g[side]["median"] = median([s[side]["median"] for s in sides])
            # The slowest sample against the median sample, per run.
            g[side]["slowest"] = [max(s[side]["samples"]) / median(s[side]["samples"])
                                  for s in sides if s[side]["samples"]]
        g["ratios"] = [
            (s["ours"]["median"] / (s["ours"]["elems"] or 1))
            / (s["anchor"]["median"] / (s["anchor"]["elems"] or 1))
            for s in sides
        ]
        out[name] = g
    return out


def row(name, g, tw_ns):
    """One table row's cells (ours, anchor, ratio, Twisted, target) and its
    verdict (None for information rows)."""
    o, a = g["ours"], g["anchor"]
    per = o["elems"] is not None and a["elems"] is not None and o["elems"] != a["elems"]
    if per:
        on, an = o["median"] / o["elems"], a["median"] / a["elems"]
        os_ = f"{fmt_ns(on)}/level ({o['param']} deep)"
        as_ = f"{fmt_ns(an)}/level ({a['param']} deep)"
    else:
        on, an = o["median"], a["median"]
        os_, as_ = fmt_ns(on), fmt_ns(an)
    ratio = median(g["ratios"])
    max_ratio, extra, desc = TARGETS.get(name, (None, None, "—"))
    ok = None if max_ratio is None else ratio <= max_ratio
    tw = "—"
    if name in TWISTED_KEYS and TWISTED_KEYS[name] in tw_ns:
        t = tw_ns[TWISTED_KEYS[name]]
        tw = f"{fmt_ns(t)} ({t / on:.1f}x ours)"
        if extra and extra[0] == "twisted_speedup":
            ok = (ok is not False) and t / on >= extra[1]
    if extra and extra[0] == "max_ns_per_elem":
        ok = (ok is not False) and on <= extra[1]
    if extra and extra[0] == "max_slowest_sample" and o["slowest"]:
        ok = (ok is not False) and max(o["slowest"]) <= extra[1]
    spread = ""
    if len(g["ratios"]) > 1:
        spread = f" ({min(g['ratios']):.2f}–{max(g['ratios']):.2f})"
    return [os_, as_, f"{ratio:.2f}x{spread}", tw, desc], ok


def main():
    baselines = sys.argv[1:] or ["new"]
    runs = [load(b) for b in baselines]
    groups = merge(runs)
    twisted = {}
    if os.path.exists(TWISTED):
        with open(TWISTED) as f:
            twisted = json.load(f)
    tw_ns = twisted.get("ns", {})
    print("| group | ours (median) | anchor (median) | ratio | Twisted | target | result |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for name in sorted(groups, key=lambda g: list(TARGETS).index(g) if g in TARGETS else 99):
        g = groups[name]
        if "ours" not in g or "anchor" not in g:
            continue
        rows[name] = row(name, g, tw_ns)
    for name, (cells, ok) in rows.items():
        res = "—" if ok is None else ("pass" if ok else "**MISS**")
        # A miss of `Deferred` on a row that has a `_local` twin (the same
        # workload on the `!Send` flavour, which is there for such chains)
        # says where the target is met, if the twin passes.
        local = name + "_local"
        if ok is False and local in rows and rows[local][1]:
            res += f" (`Deferred`; met by `LocalDeferred`: {local})"
        print(f"| {name} | {' | '.join(cells)} | {res} |")
    # The marginal cost per callback, from the 10- and 100-callback chains
    # (of `Deferred`, then of `LocalDeferred`).
    for suffix, label in (("", "chain"), ("_local", "chain (LocalDeferred)")):
        c10, c100 = "chain_10" + suffix, "chain_100" + suffix
        if not all(k in groups and {"ours", "anchor"} <= groups[k].keys() for k in (c10, c100)):
            continue
        o = (groups[c100]["ours"]["median"] - groups[c10]["ours"]["median"]) / 90
        a = (groups[c100]["anchor"]["median"] - groups[c10]["anchor"]["median"]) / 90
        print(
            f"| {label}, marginal per callback (100 − 10) / 90 | {fmt_ns(o)} | {fmt_ns(a)} | "
            f"{o / a:.2f}x | — | ≤ 1.3x | {'pass' if o / a <= 1.3 else '**MISS**'} |"
        )
    print()
    print(f"Runs: {', '.join(baselines)}; ratio = median over the runs (min–max).")
    slowest_table(groups)
    if twisted:
        print()
        print(f"Twisted {twisted['twisted']} on CPython {twisted['python']} (`benches/twisted_bench.py`).")


def slowest_table(groups):
    """For the groups with a slowest-sample target: each side's slowest
    sample against its median sample (the worst run's, and the median over
    the runs)."""
    names = [n for n, t in TARGETS.items() if t[1] and t[1][0] == "max_slowest_sample" and n in groups]
    if not names:
        return
    print()
    print("| group | ours: slowest / median sample | anchor: slowest / median sample |")
    print("|---|---|---|")
    for name in names:
        cells = []
        for side in ("ours", "anchor"):
            xs = groups[name][side]["slowest"]
            cells.append(f"{max(xs):.2f}x (median over runs {median(xs):.2f}x)" if xs else "—")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


def per_elem(side):
    return side["median"] / (side["elems"] or 1)


def compare(a_names, b_names, aliases):
    """Before (A) and after (B), from baselines measured alternately."""
    a_runs = [load(b) for b in a_names]
    b_runs = [load(b) for b in b_names]
    a_all = set().union(*a_runs)
    b_all = set().union(*b_runs)
    print("| group | ours A | ours B | B / A (min–max) | ratio to anchor A | ratio to anchor B | ≤ 1.25x |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted(b_all, key=lambda g: list(TARGETS).index(g) if g in TARGETS else 99):
        a_name = aliases[name] if aliases.get(name) in a_all else name
        if a_name not in a_all:
            continue
        # Same-round pairs: round i of A against round i of B.
        pairs = [(a[a_name], b[name]) for a, b in zip(a_runs, b_runs)
                 if {"ours", "anchor"} <= a.get(a_name, {}).keys() and {"ours", "anchor"} <= b.get(name, {}).keys()]
        if not pairs:
            continue
        slow = [per_elem(b["ours"]) / per_elem(a["ours"]) for a, b in pairs]
        ra = median([per_elem(a["ours"]) / per_elem(a["anchor"]) for a, _ in pairs])
        rb = median([per_elem(b["ours"]) / per_elem(b["anchor"]) for _, b in pairs])
        oa = median([per_elem(a["ours"]) for a, _ in pairs])
        ob = median([per_elem(b["ours"]) for _, b in pairs])
        label = name if a_name == name else f"{name} (A: {a_name})"
        verdict = "yes" if median(slow) <= 1.25 else "**no**"
        print(f"| {label} | {fmt_ns(oa)} | {fmt_ns(ob)} | {median(slow):.2f}x ({min(slow):.2f}–{max(slow):.2f}) "
              f"| {ra:.2f}x | {rb:.2f}x | {verdict} |")
    print()
    print(f"A: {', '.join(a_names)}; B: {', '.join(b_names)}; per element where the group has a throughput; "
          "medians over the rounds.")
    used = {aliases[n] for n in b_all if aliases.get(n) in a_all}
    only_a = sorted(a_all - b_all - used)
    only_b = sorted(b_all - a_all)
    if only_a:
        print(f"Only in A: {', '.join(only_a)}.")
    if only_b:
        print(f"Only in B: {', '.join(only_b)}.")


def main_compare(args):
    a_names, b_names = args[0].split(","), args[1].split(",")
    aliases = {}
    rest = args[2:]
    while rest:
        if rest[0] != "--alias" or len(rest) < 2 or "=" not in rest[1]:
            sys.exit("usage: report.py --compare A1,A2,.. B1,B2,.. [--alias B_GROUP=A_GROUP ...]")
        b_group, a_group = rest[1].split("=", 1)
        aliases[b_group] = a_group
        rest = rest[2:]
    compare(a_names, b_names, aliases)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"] and len(sys.argv) >= 4:
        main_compare(sys.argv[2:])
    else:
        main()
