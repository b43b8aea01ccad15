#!/usr/bin/env python3
"""How fast `soplab analyze` reads a capture, next to tcpdump and tshark on the same file.

    sudo python3 benches/scripts/analyze-rate.py [--capture FILE.pcap] [--packets 5000000]

1. A capture: FILE.pcap if given, else a 60 s, 20-peer loopback swarm captured with
   `tcpdump -i lo` (needs root and tcpdump).
2. A long capture of at least --packets records: copies of it one after the other, each
   shifted in time by the capture's length (`soplab-analyze` example `replicate`), so the
   result reads like one long run of the same swarm.
3. With the file in the page cache, on one core (`taskset -c 0`), under `/usr/bin/time -v`:
   `soplab analyze FILE --out DIR --no-plots`, `tcpdump -n -r FILE > /dev/null`,
   `tshark -r FILE > /dev/null`; and `soplab analyze` on the original capture too, to show
   that its memory does not grow with the file.

Prints a Markdown table: records, seconds, records per second, ratio to tcpdump, peak RSS.
The long file is deleted at the end unless --keep.
"""

import argparse
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import time


def records(path: pathlib.Path) -> int:
    """Counts the records of a legacy pcap file."""
    n = 0
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        fmt = "<IIII" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">IIII"
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            caplen = struct.unpack(fmt, h)[2]
            f.seek(caplen, 1)
            n += 1


def timed(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd on CPU 0 under /usr/bin/time -v; returns (seconds, max RSS in MiB, cpu s)."""
    full = ["taskset", "-c", "0", "/usr/bin/time", "-v"] + cmd
    r = subprocess.run(full, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    err = r.stderr

    def field(name):
        m = re.search(re.escape(name) + r":\s*(.+)", err)
        return m.group(1).strip() if m else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(x) for x in wall.split(":")]
    secs = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)
    rss = int(field("Maximum resident set size (kbytes)")) / 1024
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return secs, rss, cpu


def make_capture(root: pathlib.Path, exe: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        sys.exit("no --capture given and cannot capture one: run as root with tcpdump installed")
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    # Outside the run directory: soplab refuses an --out that holds files it did not write.
    pcap = work / "lo.pcap"
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(pcap), "-U", "-n", "udp"],
                          stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run([str(exe), "swarm", "--loopback", "--peers", "20", "--duration", "60s",
                        "--out", str(run), "--http-port", "0"], cwd=root, check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        # Also when the swarm fails: a tcpdump left running would capture loopback for good.
        td.send_signal(signal.SIGINT)
        td.wait()
    return pcap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", help="legacy pcap to replicate (default: capture a loopback swarm)")
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--work", default="target/analyze-rate")
    ap.add_argument("--keep", action="store_true", help="keep the long capture")
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    work = (root / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "soplab", "-p", "soplab-analyze",
                    "--example", "replicate"], cwd=root, check=True)
    exe = root / "target" / "release" / "soplab"
    replicate = root / "target" / "release" / "examples" / "replicate"
    capture = pathlib.Path(args.capture).resolve() if args.capture else make_capture(root, exe, work)
    base = records(capture)
    copies = -(-args.packets // base)
    big = work / "long.pcap"
    subprocess.run([str(replicate), str(capture), str(big), str(copies)], check=True)
    n = records(big)
    size = big.stat().st_size
    print(f"capture {capture}: {base} records; long file: {copies} copies, {n} records, "
          f"{size / 1e9:.2f} GB", file=sys.stderr)
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    rows = []
    s, rss, cpu = timed([str(exe), "analyze", str(big), "--out", str(work / "out"), "--no-plots"])
    rows.append(("soplab analyze", n, s, rss, cpu))
    s1, rss1, cpu1 = timed([str(exe), "analyze", str(capture), "--out", str(work / "out-1"), "--no-plots"])
    rows.append(("soplab analyze (original capture)", base, s1, rss1, cpu1))
    s, rss, cpu = timed(["tcpdump", "-n", "-r", str(big)])
    rows.append(("tcpdump -n -r", n, s, rss, cpu))
    tcpdump_rate = n / s
    if not args.no_tshark and shutil.which("tshark"):
        s, rss, cpu = timed(["tshark", "-r", str(big)])
        rows.append(("tshark -r", n, s, rss, cpu))

    print(f"\n{n} records ({size / 1e9:.2f} GB, {copies} x {capture.name}), page cache warm, "
          f"one core (taskset -c 0), {time.strftime('%Y-%m-%d')}\n")
    print("| tool | records | wall s | CPU s | records/s | vs tcpdump | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, recs, s, rss, cpu in rows:
        rate = recs / s
        print(f"| {name} | {recs:,} | {s:.2f} | {cpu:.2f} | {rate:,.0f} | {rate / tcpdump_rate:.1f}x | {rss:.0f} |")
    if not args.keep:
        big.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
