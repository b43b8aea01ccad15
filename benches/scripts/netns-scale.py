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
import sys

from swarm_runs import add_common_args, build_soplab, run_swarm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, sizes="100,300,500", out="target/netns-scale")
    ap.add_argument("--vantage", type=int, default=5)
    ap.add_argument("--peers-per-host", type=int, default=None,
                    help="peers per namespace (default: soplab's, 1 up to the bridge's 1024 ports)")
    args = ap.parse_args()
    root, exe = build_soplab()
    print("| peers | namespaces | set-up s | teardown s | mean continuity | min | peers >= 0.99 | packets captured | kernel drops | CPU s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in args.sizes.split(",")]:
        extra = ["--peers-per-host", str(args.peers_per_host)] if args.peers_per_host else []
        r = run_swarm(root, exe, args, n, ["--mode", "netns", "--vantage", str(args.vantage)], extra)
        if r.summary is None:
            continue
        run = json.loads((r.out / "run.json").read_text())
        cont, ok = r.continuity()
        namespaces = len({h.get("netns") for h in run["hosts"]}) + 1
        packets = sum(p["packets"] for p in run["pcaps"])
        drops = sum(p["dropped_by_kernel"] or 0 for p in run["pcaps"])
        print(f"| {n} | {namespaces} | {run['netns_setup_s']:.2f} | {run['netns_teardown_s']:.2f} | "
              f"{sum(cont) / len(cont):.4f} | {min(cont):.4f} | {ok}/{n} | {packets} | {drops} | {r.cpu:.1f} | {r.wall:.0f} |",
              flush=True)
        r.done(args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
