#!/usr/bin/env python3
"""Differential conformance runner: tokio-deferred against Twisted 26.10.

Generates N random scripts of the op language from a seed, runs them through
the Twisted interpreter (conformance/twisted_interp.py, in a venv it creates
under target/) and the Rust interpreter (tests/conformance.rs, one cargo test
process for the whole batch), diffs the traces, and shrinks every failing
script by dropping ops. See CONTRIBUTING.md and DIFFERENCES.md.

    python3 conformance/run.py                 # 500 scripts, seed 1
    python3 conformance/run.py --n 5000 --seed 7
    python3 conformance/run.py --record-golden # refresh conformance/golden/
    python3 conformance/run.py --local --n 500 --seed 3  # over LocalDeferred
    python3 conformance/run.py --local --record-golden   # refresh golden/local_*

With --local, the scripts use only the ops LocalDeferred supports
(LOCAL_OPS: no list, gather, race, lock, semaphore, queue or clock op) and the
Rust side is tests/conformance/local_interp.rs (`replay_local_scripts_from_env`).
"""

import argparse
import os
import random
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "conformance"
WORK = ROOT / "target" / "conformance"
VENV = ROOT / "target" / "conform-venv"
TWISTED = "twisted==26.10.0"

# Ops that use a Deferred's consumer side (its `Deferred` handle in Rust).
# A Deferred returned from a callback is moved into that chain in Rust, so
# these are never generated for it afterwards (DIFFERENCES.md, D3).
CONSUMER_OPS = {"drop", "ebfail", "cb", "cbs", "cbfail", "cbpanic", "cbret", "ebret", "cbfire", "cbcancel", "cbdo",
                "ebrec", "eberr", "both", "pause", "unpause", "cancel", "chain"}


# Ops that make Deferred k (`op k ...`) from others or from a primitive: it
# has no Resolver in the script.
LIST_OPS = {"list", "gather", "race"}
DERIVED_OPS = LIST_OPS | {"acquire", "sacquire", "get", "later"}
# Ops on the script's shared primitives, naming no Deferred.
GLOBAL_OPS = {"release", "srelease", "put", "advance", "queue", "sem"}
# The ops of tests/conformance/local_interp.rs (LocalDeferred, `--local`):
# everything but the list/primitive/clock ops, which are built on the
# thread-safe Deferred (DIFFERENCES.md, "LocalDeferred").
LOCAL_OPS = {"new", "newc", "newok", "newerr"} | CONSUMER_OPS | {"fire", "fail"}
# The Rust entry point (a cargo test of tests/conformance.rs) per mode.
RUST_ENTRY = {False: "replay_scripts_from_env", True: "replay_local_scripts_from_env"}


def list_inputs(w):
    """The input indices of `list k all|first FLAGS i..`, `gather k FLAGS i..`
    and `race k i..`."""
    start = {"list": 4, "gather": 3, "race": 2}[w[0]]
    return [int(x) for x in w[start:]]


class Model:
    """What the generator and the shrinker must know to keep a script valid."""

    def __init__(self):
        self.created = set()
        self.consumed = set()
        self.pauses = {}
        # Deferreds ever paused (by `pause` or a `cbdo` callback), or that
        # may wait on one (cbret/ebret): never moved into a list (D10).
        self.ever_paused = set()
        # Deferreds made by succeed()/fail(): they have no Resolver.
        self.no_resolver = set()
        # "running a's chain may touch b": a -> {b: via_return}. Edges come
        # from chain/cbfire/cbcancel (a's callback fires or cancels b) and,
        # both ways, from cbret/ebret (the outer's callback looks at the
        # returned Deferred; the returned one's completion resumes the
        # outer). D5: no cycle may go through a return edge.
        self.edges = {}

    def reaches(self, src, dst, need_return):
        """Whether dst is reachable from src (through a return edge, if
        need_return)."""
        seen, todo = set(), [(src, False)]
        while todo:
            node, ret = todo.pop()
            if node == dst and (ret or not need_return):
                return True
            if (node, ret) in seen:
                continue
            seen.add((node, ret))
            for nxt, via_ret in self.edges.get(node, {}).items():
                todo.append((nxt, ret or via_ret))
        return False

    def edge_ok(self, a, b, via_return):
        if via_return:
            return not (self.reaches(b, a, False) or self.reaches(a, b, False))
        return not self.reaches(b, a, True)

    def live(self):
        return sorted(self.created - self.consumed)

    def valid(self, w):
        op = w[0]
        if op in GLOBAL_OPS:
            return True
        if op in DERIVED_OPS:
            if int(w[1]) in self.created:
                return False
            if op in LIST_OPS:
                ins = list_inputs(w)
                # D9: empty first_success()/race() differ on purpose; an
                # empty list().all() or gather fires at once on both sides.
                least = 0 if op == "gather" or (op == "list" and w[2] == "all") else 1
                return (len(ins) >= least and len(set(ins)) == len(ins)
                        and all(j in self.created and j not in self.consumed
                                and j not in self.ever_paused for j in ins))
            return True
        a = [int(x) for x in w[1:] if x.lstrip("-").isdigit()]
        if op in ("new", "newc", "newok", "newerr"):
            return a[0] not in self.created
        i = a[0]
        if i not in self.created:
            return False
        if op in ("fire", "fail") and i in self.no_resolver:
            return False
        if op in ("cbfire", "chain") and a[1] in self.no_resolver:
            return False
        if op in CONSUMER_OPS and i in self.consumed:
            return False
        if op in ("cbret", "ebret"):
            j = a[1]
            # D2: a callback never returns its own Deferred.
            return (j != i and j in self.created and j not in self.consumed
                    and self.edge_ok(j, i, True))
        if op == "cbcancel":
            return (a[1] in self.created and a[1] not in self.consumed
                    and self.edge_ok(i, a[1], False))
        if op in ("cbfire", "chain"):
            return a[1] in self.created and self.edge_ok(i, a[1], False)
        if op == "unpause":
            # D1: never unpause more than was paused.
            return self.pauses.get(i, 0) > 0
        if op == "cbdo":
            j = int(w[3])
            if j not in self.created or not self.edge_ok(i, j, False):
                return False
            # D1 again: the callback's unpause is reserved now, so that
            # unpauses never outnumber pauses whenever it runs.
            return w[2] != "unpause" or self.pauses.get(j, 0) > 0
        return True

    def apply(self, w):
        op = w[0]
        if op in GLOBAL_OPS:
            return
        if op in DERIVED_OPS:
            k = int(w[1])
            self.created.add(k)
            self.no_resolver.add(k)
            if op in LIST_OPS:
                for j in list_inputs(w):
                    # The input is moved into the list (D3); its chain fires
                    # the list, and cancelling the list cancels it.
                    self.consumed.add(j)
                    self.edges.setdefault(j, {})[k] = False
                    self.edges.setdefault(k, {})[j] = False
            return
        a = [int(x) for x in w[1:] if x.lstrip("-").isdigit()]
        if op in ("new", "newc", "newok", "newerr"):
            self.created.add(a[0])
            if op in ("newok", "newerr"):
                self.no_resolver.add(a[0])
        elif op == "drop":
            self.consumed.add(a[0])
        elif op in ("cbret", "ebret"):
            self.consumed.add(a[1])
            if a[1] in self.ever_paused:
                # i may end up waiting on a paused Deferred (D10).
                self.ever_paused.add(a[0])
            # Both ways: the outer's callback looks at the returned Deferred,
            # and the returned Deferred's completion resumes the outer.
            self.edges.setdefault(a[1], {})[a[0]] = True
            self.edges.setdefault(a[0], {})[a[1]] = True
        elif op in ("cbfire", "chain", "cbcancel", "cbdo"):
            e = self.edges.setdefault(a[0], {})
            e[a[1]] = e.get(a[1], False)
            if op == "cbdo" and w[2] == "pause":
                self.ever_paused.add(a[1])
            if op == "cbdo" and w[2] == "unpause":
                self.pauses[a[1]] -= 1
        elif op == "pause":
            self.pauses[a[0]] = self.pauses.get(a[0], 0) + 1
            self.ever_paused.add(a[0])
        elif op == "unpause":
            self.pauses[a[0]] -= 1


def check(ops):
    m = Model()
    for op in ops:
        w = op.split()
        if not m.valid(w):
            return False
        m.apply(w)
    return True


def gen_script(rng, max_ops=18, max_d=4, max_x=3, local=False):
    """A random valid script; with local, of LOCAL_OPS only (then max_x is
    ignored)."""
    if local:
        max_x = 0
    m = Model()
    ops = []
    n_ops = rng.randint(3, max_ops)
    n_d = rng.randint(2, max_d)
    # Deferreds made by list/gather/race/lock/semaphore/queue/clock ops.
    n_x = rng.randint(0, max_x)
    n_made = 0
    if n_x and rng.random() < 0.3:
        ops.append(f"sem {rng.randint(1, 3)}")
    if n_x and rng.random() < 0.5:
        lim = lambda: rng.choice(["-", "0", "1", "2"])  # noqa: E731
        ops.append(f"queue {lim()} {lim()}")
    while len(ops) < n_ops:
        created = sorted(m.created)
        live = m.live()
        choices = []
        if n_made < n_d:
            choices += [("create", 6 if not created else 3)]
        if n_made < n_d + n_x and created and not local:
            choices += [("acquire", 1), ("sacquire", 1), ("get", 1), ("later", 1)]
            if live:
                choices += [("list", 2), ("gather", 1), ("race", 1)]
        if n_x:
            choices += [("release", 1), ("srelease", 1), ("put", 1), ("advance", 1)]
        firable = [c for c in created if c not in m.no_resolver]
        if firable:
            choices += [("fire", 3), ("fail", 2)]
        if live:
            choices += [("cb", 4), ("cbfail", 1), ("cbpanic", 1), ("ebrec", 2), ("eberr", 1),
                        ("both", 1), ("pause", 1), ("unpause", 4), ("cancel", 2),
                        ("cbfire", 1), ("cbcancel", 1), ("chain", 1), ("cbdo", 3),
                        ("cbs", 1), ("drop", 1), ("ebfail", 1)]
            if len(live) > 1:
                choices += [("cbret", 6), ("ebret", 2)]
        if not choices:
            break  # every Deferred is spent: end the script here
        kinds, weights = zip(*choices)
        kind = rng.choices(kinds, weights)[0]
        k = rng.randint(1, 9)
        if kind in DERIVED_OPS:
            n_made += 1
            w = [kind, str(len(created))]
            if kind in LIST_OPS:
                free = [j for j in live if j not in m.ever_paused] or live
                ins = rng.sample(free, rng.randint(0 if rng.random() < 0.1 else 1, min(3, len(free))))
                if kind == "list":
                    w += [rng.choice(["all", "all", "first"]), rng.choice(["-", "e", "c", "ec"])]
                elif kind == "gather":
                    w += [rng.choice(["-", "c"])]
                w += [str(j) for j in ins]
            elif kind == "later":
                w += [str(rng.randint(0, 3)), str(k)]
        elif kind in ("put", "advance"):
            w = [kind, str(k if kind == "put" else rng.randint(0, 2))]
        elif kind in ("release", "srelease"):
            w = [kind]
        elif kind == "create":
            n_made += 1
            i = len(created)
            mode = rng.choice(["new", "new", "none", "cb", "eb", "ok", "err"])
            if mode == "new":
                w = ["new", str(i)]
            elif mode in ("ok", "err"):
                w = ["new" + mode, str(i), str(k)]
            else:
                w = ["newc", str(i), mode] + ([str(k)] if mode != "none" else [])
        elif kind in ("fire", "fail"):
            w = [kind, str(rng.choice(firable)), str(k)]
        else:
            i = rng.choice(live)
            if kind in ("cb", "cbfail", "cbpanic", "ebrec", "ebfail"):
                w = [kind, str(i), str(k)]
            elif kind == "cbs":
                w = [kind, str(i), str(k), str(rng.randint(0, 9))]
            elif kind in ("cbret", "ebret"):
                w = [kind, str(i), str(rng.choice([j for j in live if j != i]))]
            elif kind == "cbfire":
                w = [kind, str(i), str(rng.choice(created)), str(k)]
            elif kind == "cbcancel":
                w = [kind, str(i), str(rng.choice(live))]
            elif kind == "cbdo":
                sub = rng.choice(["pause", "unpause", "unpause", "cb", "cancel"])
                w = [kind, str(i), sub, str(rng.choice(created))] + ([str(k)] if sub == "cb" else [])
            elif kind == "chain":
                w = [kind, str(i), str(rng.choice(created))]
            else:
                w = [kind, str(i)]
        if m.valid(w):
            m.apply(w)
            ops.append(" ".join(w))
    return ops


def ensure_venv():
    py = VENV / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import twisted, sys; "
                             "sys.exit(twisted.__version__ != '26.10.0')"])
        if ok.returncode == 0:
            return py
    print(f"creating {VENV} and installing {TWISTED} ...", file=sys.stderr)
    venv.create(VENV, with_pip=True, clear=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", TWISTED], check=True)
    return py


def write_scripts(path, scripts):
    with open(path, "w") as fh:
        for name, ops in scripts:
            fh.write(f"== {name}\n")
            for op in ops:
                fh.write(op + "\n")


def parse_traces(text):
    traces, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("=="):
            cur = line[2:].strip()
            traces[cur] = []
        else:
            traces[cur].append(line)
    return traces


def holds_cycle(ops):
    """Whether the script builds a reference cycle among tokio-deferred's
    shared states: a link of i's chain owns j's Resolver (chain i j,
    cbfire i j) or j's handle (cbret/ebret i j). Rust has no cycle collector,
    so such a cycle lives on (and reports nothing) where Python's gc
    collects it (and may report an unhandled error): N3 in DIFFERENCES.md."""
    edges = {}
    for op in ops:
        w = op.split()
        if w[0] in ("chain", "cbfire", "cbret", "ebret"):
            edges.setdefault(int(w[1]), set()).add(int(w[2]))
        elif w[0] in LIST_OPS:
            # Each input's chain owns the list's shared state and Resolver.
            for j in list_inputs(w):
                edges.setdefault(j, set()).add(int(w[1]))

    def reach(src, dst):
        seen, todo = set(), [src]
        while todo:
            n = todo.pop()
            for m in edges.get(n, ()):
                if m == dst:
                    return True
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return False

    return any(reach(i, i) for i in edges)


def returns_paused(ops):
    """Whether a callback may return a paused Deferred (one with pauses left
    when it is returned, or paused by a `cbdo` callback at any time). Known
    core bug K1 in DIFFERENCES.md: if that Deferred holds a failure, Twisted
    reports it (when it was armed before the pause) and tokio-deferred
    drops it silently."""
    pauses, maybe = {}, set()
    for op in ops:
        w = op.split()
        if w[0] in ("pause", "unpause"):
            pauses[w[1]] = pauses.get(w[1], 0) + (1 if w[0] == "pause" else -1)
        elif w[0] == "cbdo" and w[2] == "pause":
            maybe.add(w[3])
        elif w[0] in ("cbret", "ebret") and (pauses.get(w[2], 0) > 0 or w[2] in maybe):
            return True
    return False


def needs_normalizing(ops):
    # returns_paused (K1) is no longer normalized: the core bug is fixed.
    return holds_cycle(ops)


def normalize(lines, ops):
    """The one place where traces are rewritten (DIFFERENCES.md); the other
    deliberate differences are excluded by the generator. N3: in
    these scripts, unhandled-error reports are not compared."""
    if needs_normalizing(ops):
        return [line for line in lines if not line.startswith("unhandled ")]
    return lines


def run_python(py, scripts):
    path = WORK / "scripts-py.txt"
    write_scripts(path, scripts)
    out = subprocess.run([str(py), str(HERE / "twisted_interp.py"), str(path)],
                         check=True, capture_output=True, text=True).stdout
    return parse_traces(out)


def run_rust(scripts, local=False):
    path, out = WORK / "scripts-rs.txt", WORK / "traces-rs.txt"
    write_scripts(path, scripts)
    env = dict(os.environ, CONFORMANCE_SCRIPTS=str(path), CONFORMANCE_OUT=str(out))
    done = subprocess.run(["cargo", "test", "--quiet", "--test", "conformance", "--",
                           "--ignored", "--exact", RUST_ENTRY[local]],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the Rust interpreter failed:\n{done.stdout}\n{done.stderr}")
    return parse_traces(out.read_text())


def diff(py, scripts, local=False):
    """Names of the scripts whose traces differ, and both traces of each
    (the Rust side over LocalDeferred if local)."""
    tw, rs = run_python(py, scripts), run_rust(scripts, local)
    bad = {}
    for name, ops in scripts:
        a = normalize(tw.get(name, ["<missing>"]), ops)
        b = normalize(rs.get(name, ["<missing>"]), ops)
        if a != b:
            bad[name] = (a, b)
    return bad


def shrink(py, ops, local=False):
    """Drops ops (one at a time, in batches of candidates) while the script
    stays valid and still differs."""
    while True:
        cands = []
        for k in range(len(ops)):
            c = ops[:k] + ops[k + 1:]
            if check(c):
                cands.append((f"cand{k}", c))
        if not cands:
            return ops
        bad = diff(py, cands, local)
        still = [c for name, c in cands if name in bad]
        if not still:
            return ops
        ops = min(still, key=len)


def show(title, ops, traces, local=False):
    print(title)
    print("  ops:\n    " + "\n    ".join(ops))
    print("  twisted:\n    " + "\n    ".join(traces[0]))
    print(f"  tokio-deferred{' (LocalDeferred)' if local else ''}:\n    " + "\n    ".join(traces[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="number of scripts (500)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    ap.add_argument("--max-ops", type=int, default=18, help="ops per script, at most (18)")
    ap.add_argument("--max-d", type=int, default=4, help="Deferreds per script, at most (4)")
    ap.add_argument("--max-x", type=int, default=3,
                    help="Deferreds made by list/lock/queue/clock ops per script, at most (3)")
    ap.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    ap.add_argument("--show", type=int, default=3, help="failures to shrink and print (3)")
    ap.add_argument("--record-golden", action="store_true",
                    help="write the scripts and Twisted's traces to conformance/golden/")
    ap.add_argument("--local", action="store_true",
                    help="only the ops LocalDeferred supports (no list/primitive/clock op), "
                         "run over LocalDeferred; with --record-golden, write "
                         "golden/local_scripts.txt and golden/local_twisted.txt")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    py = ensure_venv()
    rng = random.Random(args.seed)
    prefix = "l" if args.local else "s"
    scripts = [(f"{prefix}{args.seed}-{n}", gen_script(rng, args.max_ops, args.max_d, args.max_x, args.local))
               for n in range(args.n)]
    if args.local:
        for name, ops in scripts:
            assert all(op.split()[0] in LOCAL_OPS for op in ops), (name, ops)

    if args.record_golden:
        # Only scripts whose traces need no normalization, so that the Rust
        # test can compare them exactly.
        scripts = [(name, ops) for name, ops in scripts if not needs_normalizing(ops)]
        gold = HERE / "golden"
        gold.mkdir(exist_ok=True)
        names = ("local_scripts.txt", "local_twisted.txt") if args.local else ("scripts.txt", "twisted.txt")
        write_scripts(gold / names[0], scripts)
        out = subprocess.run([str(py), str(HERE / "twisted_interp.py"), str(gold / names[0])],
                             check=True, capture_output=True, text=True).stdout
        (gold / names[1]).write_text(out)
        print(f"recorded {len(scripts)} scripts and Twisted's traces in {gold}")
        return 0

    built = subprocess.run(["cargo", "test", "--quiet", "--no-run", "--test", "conformance"],
                           cwd=ROOT, capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"cannot build tests/conformance.rs:\n{built.stderr}")
    bad = diff(py, scripts, args.local)
    ops_total = sum(len(ops) for _, ops in scripts)
    over = " over LocalDeferred" if args.local else ""
    print(f"seed {args.seed}: {len(scripts)} scripts ({ops_total} ops) compared{over}, "
          f"{len(bad)} differ")
    by_name = dict(scripts)
    seen = set()
    shown = 0
    for name in sorted(bad, key=lambda n: len(by_name[n])):
        if shown >= args.show:
            break
        ops = by_name[name] if args.no_shrink else shrink(py, by_name[name], args.local)
        key = tuple(ops)
        if key in seen:
            continue
        seen.add(key)
        shown += 1
        traces = diff(py, [("min", ops)], args.local).get("min", bad[name])
        show(f"--- {name} (shrunk from {len(by_name[name])} to {len(ops)} ops)", ops, traces, args.local)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
