#!/usr/bin/env python3
"""Locked (atomic read-modify-write) instructions per operation, x86-64.

Runs a workload of the callgrind driver (`benches/instructions.rs`) under
`valgrind --tool=callgrind --dump-instr=yes` at n = 0 and n = N, and counts
how many times instructions with a `lock` prefix, or an `xchg` with a memory
operand (locked implicitly), executed: `(count(N) - count(0)) / N`. Like the
instruction counts, the result is exact and does not move with the load.

Usage: scripts/locked_ops.py [--bin PATH] [workload[:n] ...]
Default workloads: the single-Deferred and chain rows with their anchors.
Needs valgrind and objdump.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

DEFAULT = [
    "oneshot_send_recv:1000",
    "new_fire_take:1000",
    "oneshot_pending_send_recv:1000",
    "pending_fire_take:1000",
    "boxed_fn_10:1000",
    "chain_10:1000",
]


def driver() -> str:
    out = subprocess.run(
        ["cargo", "bench", "--no-run", "--bench", "instructions"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    paths = re.findall(r"Executable .*\((.*)\)", out)
    if not paths:
        sys.exit("could not find the instructions bench binary in cargo's output")
    return paths[-1]


def locked_addresses(binary: str) -> set[int]:
    dis = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", binary],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = set()
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(lock |xchg)(.*)", line)
        # `xchg %ax,%ax` is a nop: only an xchg with memory is locked.
        if m and (m.group(2) == "lock " or "(" in m.group(3)):
            found.add(int(m.group(1), 16))
    return found


def executed(binary: str, workload: str, n: int) -> collections.Counter:
    """Executions per instruction address (self cost only, calls skipped)."""
    fd, out = tempfile.mkstemp(prefix="callgrind.")
    os.close(fd)
    try:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-instr=yes",
                "--compress-pos=no",
                "--compress-strings=no",
                f"--callgrind-out-file={out}",
                binary,
                workload,
                str(n),
            ],
            capture_output=True,
            check=True,
        )
        counts = collections.Counter()
        after_calls = False
        # Addresses are per object (libc's overlap the binary's): count
        # only the lines of the binary itself.
        target = os.path.realpath(binary)
        in_binary = False
        with open(out) as f:
            for line in f:
                if line.startswith("ob="):
                    in_binary = os.path.realpath(line[3:].strip()) == target
                    continue
                if line.startswith("calls="):
                    after_calls = True
                    continue
                m = re.match(r"^(0x[0-9a-f]+) \d+ (\d+)$", line.strip())
                if m:
                    # The line after `calls=` is the call's inclusive cost.
                    if after_calls:
                        after_calls = False
                        continue
                    if in_binary:
                        counts[int(m.group(1), 16)] += int(m.group(2))
        return counts
    finally:
        os.unlink(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="the instructions bench binary (default: build it)")
    ap.add_argument("workloads", nargs="*", default=DEFAULT)
    args = ap.parse_args()
    given = os.path.abspath(args.bin) if args.bin else None
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    binary = given or driver()
    locked = locked_addresses(binary)
    for w in args.workloads:
        name, _, n = w.partition(":")
        n = int(n or 1000)
        base = executed(binary, name, 0)
        full = executed(binary, name, n)
        total = sum(full[a] - base[a] for a in locked)
        print(f"{name} {total / n:.1f}")


if __name__ == "__main__":
    main()
