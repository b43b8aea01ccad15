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
import json
import os
import pathlib
import resource
import subprocess
import sys
import time


def parse_secs(s: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if s.endswith(u):
            return float(s[: -len(u)]) * units[u]
    return float(s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,200,300,400,500")
    ap.add_argument("--duration", default="60s")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep each run directory (GBs at 1000 peers: played streams, truth)")
    ap.add_argument("--out", default="target/scale")
    args = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "soplab"], cwd=root, check=True)
    exe = root / "target" / "release" / "soplab"
    secs = parse_secs(args.duration)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        out = root / args.out / str(n)
        subprocess.run(["rm", "-rf", str(out)], check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = subprocess.run(
            [str(exe), "swarm", "--loopback", "--peers", str(n), "--duration", args.duration,
             "--out", str(out), "--processes", str(args.processes), "--http-port", "0"],
            cwd=root, capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if r.returncode != 0:
            print(f"N={n}: soplab failed ({r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr)
            rows.append((n, None, None, 0, False, cpu, wall))
            continue
        s = json.loads((out / "summary.json").read_text())
        cont = [p["continuity"] or 0.0 for p in s["peers"]]
        ok = sum(1 for c in cont if c >= 0.99)
        exact = all(p["played_matches_source"] for p in s["peers"])
        rows.append((n, min(cont), sum(cont) / len(cont), ok, exact, cpu, wall))
        if not args.keep:
            subprocess.run(["rm", "-rf", str(out)], check=True)
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
