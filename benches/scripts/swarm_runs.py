"""What the scale scripts (loopback-scale.py, netns-scale.py) share: their common options,
building soplab, running one swarm size with the CPU time of its processes, and reading the
peers' continuity from its summary.json.
"""

import json
import pathlib
import resource
import subprocess
import sys
import time


def add_common_args(ap, sizes: str, out: str) -> None:
    """The options every scale script takes: --sizes, --duration, --processes, --keep, --out."""
    ap.add_argument("--sizes", default=sizes)
    ap.add_argument("--duration", default="60s")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep each run directory (GBs at 1000 peers: played streams, truth)")
    ap.add_argument("--out", default=out)


def build_soplab() -> tuple[pathlib.Path, pathlib.Path]:
    """Builds the release `soplab`; returns the repository root and the binary."""
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "soplab"], cwd=root, check=True)
    return root, root / "target" / "release" / "soplab"


class Run:
    """One `soplab swarm` of n peers: its directory, CPU and wall time, and (if it succeeded)
    its summary.json."""

    def __init__(self, n: int, out: pathlib.Path, cpu: float, wall: float, summary):
        self.n, self.out, self.cpu, self.wall, self.summary = n, out, cpu, wall, summary

    def continuity(self) -> tuple[list[float], int]:
        """Every peer's continuity (0 for a peer that never played), and how many reached 0.99."""
        cont = [p["continuity"] or 0.0 for p in self.summary["peers"]]
        return cont, sum(1 for c in cont if c >= 0.99)

    def done(self, keep: bool) -> None:
        """Removes the run directory unless asked to keep it."""
        if not keep:
            subprocess.run(["rm", "-rf", str(self.out)], check=True)


def run_swarm(root, exe, args, n: int, mode: list[str], extra: list[str]) -> Run:
    """Runs `soplab swarm <mode> --peers n ... <extra>` into <--out>/n; on failure says so on
    stderr and returns a Run without summary. The CPU time is that of every child process
    (the daemons, tcpdump)."""
    out = root / args.out / str(n)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(
        [str(exe), "swarm", *mode, "--peers", str(n), "--duration", args.duration, "--out", str(out),
         "--processes", str(args.processes), "--http-port", "0", *extra],
        cwd=root, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        print(f"N={n}: soplab failed ({r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr)
        return Run(n, out, cpu, wall, None)
    return Run(n, out, cpu, wall, json.loads((out / "summary.json").read_text()))
