#!/usr/bin/env python3
"""Prints a Markdown table of the medians criterion saved under target/criterion.

    cargo bench -p soplab-benches --bench wire -- --warm-up-time 1 --measurement-time 3
    python3 benches/scripts/criterion-table.py [target/criterion] [GROUP ...]

Columns: benchmark id, median with its 95% confidence interval, and throughput when the
benchmark declared one (bytes per iteration).
"""

import json
import pathlib
import sys


def fmt_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main() -> None:
    args = sys.argv[1:]
    root = pathlib.Path(args.pop(0) if args and "/" in args[0] else "target/criterion")
    groups = set(args)
    rows = []
    for est in sorted(root.glob("**/new/estimates.json")):
        bench_dir = est.parent.parent
        meta = json.loads((est.parent / "benchmark.json").read_text())
        if groups and meta["group_id"] not in groups:
            continue
        median = json.loads(est.read_text())["median"]
        ci = median["confidence_interval"]
        thr = ""
        tp = meta.get("throughput") or {}
        if "Bytes" in tp:
            gib = tp["Bytes"] / median["point_estimate"] * 1e9 / 2**30
            thr = f"{gib:.2f} GiB/s"
        rows.append((meta["full_id"], median["point_estimate"], ci["lower_bound"], ci["upper_bound"], thr, bench_dir))
    print("| benchmark | median | 95% CI | throughput |")
    print("|---|---:|---:|---:|")
    for full_id, point, lo, hi, thr, _ in rows:
        print(f"| `{full_id}` | {fmt_time(point)} | {fmt_time(lo)} – {fmt_time(hi)} | {thr} |")


if __name__ == "__main__":
    main()
