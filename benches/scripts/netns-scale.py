#!/usr/bin/env python3
"""How large a netns swarm this machine holds at 500 kbit/s while tcpdump captures at 5
vantage peers, and how long setting up and tearing down its namespaces takes.

    sudo python3 benches/scripts/netns-scale.py [--sizes 100,300,500] [--duration 60s]

For each size N it runs `soplab swarm --mode netns --peers N --vantage 5` (release build:
one namespace per peer, plus tracker, source and hub), reads summary.json and run.json and
reports: the namespace set-up and teardown times, the mean and smallest continuity, how many
peers reached >= 0.99, packets captured and dropped by the kernel before tcpdump read them, and
the CPU time of the orchestrator's children (daemons and tcpdump; the kernel's bridging work
mostly lands there too). The largest N with mean continuity >= 0.99 is the answer. Each run
is bounded by --duration and removes its namespaces when it ends. Results print as a Markdown
table.
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,300,500")
    ap.add_argument("--duration", default="60s")
    ap.add_argument("--vantage", type=int, default=5)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--peers-per-host", type=int, default=None,
                    help="peers per namespace (default: soplab's, 1 up to the bridge's 1024 ports)")
    ap.add_argument("--keep", action="store_true", help="keep each run directory (GBs at 1000 peers: played streams, truth)")
    ap.add_argument("--out", default="target/netns-scale")
    args = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "soplab"], cwd=root, check=True)
    exe = root / "target" / "release" / "soplab"
    print("| peers | namespaces | set-up s | teardown s | mean continuity | min | peers >= 0.99 | packets captured | kernel drops | CPU s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in args.sizes.split(",")]:
        out = root / args.out / str(n)
        subprocess.run(["rm", "-rf", str(out)], check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = subprocess.run(
            [str(exe), "swarm", "--mode", "netns", "--peers", str(n), "--vantage", str(args.vantage),
             "--duration", args.duration, "--out", str(out), "--processes", str(args.processes),
             "--http-port", "0"]
            + (["--peers-per-host", str(args.peers_per_host)] if args.peers_per_host else []),
            cwd=root, capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if r.returncode != 0:
            print(f"N={n}: soplab failed ({r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr)
            continue
        s = json.loads((out / "summary.json").read_text())
        run = json.loads((out / "run.json").read_text())
        cont = [p["continuity"] or 0.0 for p in s["peers"]]
        ok = sum(1 for c in cont if c >= 0.99)
        namespaces = len({h.get("netns") for h in run["hosts"]}) + 1
        packets = sum(p["packets"] for p in run["pcaps"])
        drops = sum(p["dropped_by_kernel"] or 0 for p in run["pcaps"])
        print(f"| {n} | {namespaces} | {run['netns_setup_s']:.2f} | {run['netns_teardown_s']:.2f} | "
              f"{sum(cont) / len(cont):.4f} | {min(cont):.4f} | {ok}/{n} | {packets} | {drops} | {cpu:.1f} | {wall:.0f} |",
              flush=True)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(out)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
