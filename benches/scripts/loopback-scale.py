#!/usr/bin/env python3
"""How large a loopback swarm this machine holds at 500 kbit/s, and the CPU time per peer.

    python3 benches/scripts/loopback-scale.py [--sizes 100,200,300,500] [--duration 60s]

For each size N it runs `soplab swarm --loopback --peers N` (release build), reads
summary.json and reports: the smallest and mean continuity, how many peers reached
continuity >= 0.99, whether every peer played exactly the source's bytes, and the CPU time
(user + system, all daemons) per peer per second of streaming. The largest N with every peer
at >= 0.99 is the answer. Results are appended as a Markdown table to stdout.
"""

import argparse
import sys

from swarm_runs import add_common_args, build_soplab, run_swarm


def parse_secs(s: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if s.endswith(u):
            return float(s[: -len(u)]) * units[u]
    return float(s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, sizes="100,200,300,400,500", out="target/scale")
    args = ap.parse_args()
    root, exe = build_soplab()
    secs = parse_secs(args.duration)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        run = run_swarm(root, exe, args, n, ["--loopback"], [])
        cpu, wall = run.cpu, run.wall
        if run.summary is None:
            rows.append((n, None, None, 0, False, cpu, wall))
            continue
        cont, ok = run.continuity()
        exact = all(p["played_matches_source"] for p in run.summary["peers"])
        rows.append((n, min(cont), sum(cont) / len(cont), ok, exact, cpu, wall))
        run.done(args.keep)
        print(f"N={n}: min {min(cont):.4f} mean {sum(cont)/len(cont):.4f} ok {ok}/{n} exact {exact} "
              f"cpu {cpu:.1f}s wall {wall:.1f}s", file=sys.stderr)
    print(f"| peers | min continuity | mean continuity | peers >= 0.99 | bytes exact | CPU ms per peer per s of streaming |")
    print(f"|---|---|---|---|---|---|")
    for n, mn, mean, ok, exact, cpu, wall in rows:
        if mn is None:
            print(f"| {n} | failed | | | | |")
            continue
        print(f"| {n} | {mn:.4f} | {mean:.4f} | {ok}/{n} | {exact} | {cpu / n / secs * 1000:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
