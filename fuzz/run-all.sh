#!/usr/bin/env bash
# Runs every cargo-fuzz target of soplab in turn for a given time and sums up what each did.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: fuzz/run-all.sh SECONDS [TARGET...]

Runs each fuzz target (every one `cargo fuzz list` names, or the TARGETs given) for SECONDS,
one at a time, continuing from its corpus in fuzz/corpus/TARGET. Prints, per target, the
executions, exec/s (wall clock, and per CPU second, which does not depend on what else the
machine runs), coverage, corpus size and crashes, then a summary table. Exits 1 if a target
crashed: libFuzzer stops at the first crash and saves the input in fuzz/artifacts/TARGET/
(replay it with the command the log prints). Full logs: fuzz/target/run-all/TARGET.log.

To reach a number of executions, give SECONDS with room to spare and FUZZ_RUNS=N: each
target stops at whichever comes first.

Environment:
  FUZZ_RUNS=N          stop a target after N executions as well (libFuzzer -runs=N)
  FUZZ_SANITIZER=NAME  none (default: Rust code is memory-safe, panics and overflows still
                       crash) or address; address needs nightly: the script sets
                       RUSTC_BOOTSTRAP=1 when the toolchain is not nightly
  FUZZ_TOOLCHAIN=NAME  rustup toolchain to build with (default: the active one), e.g. nightly
  FUZZ_ARGS="..."      more libFuzzer options for every target
  FUZZ_BUILD_ARGS="..." more `cargo fuzz build`/`run` options, e.g. --no-trace-compares (no
                       comparison tracing: 1.6 times the executions per second on tracker, coarser
                       guidance; the record runs in fuzz/README.md say which they used)
  SOPLAB_FUZZ_LAX=a,b  invariants of the peer and tracker targets to report once instead of
                       failing on (fuzz/README.md lists them)
EOF
}

if [[ $# -ge 1 && ($1 == -h || $1 == --help) ]]; then
    usage
    exit 0
fi
if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 2
fi
seconds=$1
shift

cd "$(dirname "$0")"

toolchain=()
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
fi

if ! cargo "${toolchain[@]}" fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed; installing it with: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        echo "error: could not install cargo-fuzz. Install it by hand (cargo install cargo-fuzz)" >&2
        echo "and run this script again." >&2
        exit 1
    fi
fi

sanitizer=${FUZZ_SANITIZER:-none}
if [[ $sanitizer != none ]] && ! rustc "${toolchain[@]}" --version | grep -q nightly; then
    # cargo-fuzz passes -Zsanitizer, a nightly flag; this lets a stable toolchain take it.
    export RUSTC_BOOTSTRAP=1
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

runs=()
if [[ -n ${FUZZ_RUNS:-} ]]; then
    runs=("-runs=$FUZZ_RUNS")
fi
read -r -a extra <<<"${FUZZ_ARGS:-}"
read -r -a build_args <<<"${FUZZ_BUILD_ARGS:-}"

# The commit the targets are built from (taken now: the tree may move on during a long run).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
if [[ -n $(git status --porcelain -- .. 2>/dev/null) ]]; then
    commit="$commit+changes"
fi
logs=target/run-all
mkdir -p "$logs"
echo "building ${targets[*]} (sanitizer $sanitizer)"
for t in "${targets[@]}"; do
    cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer" "${build_args[@]}" "$t" >"$logs/$t.build.log" 2>&1 || {
        echo "error: building $t failed; see fuzz/$logs/$t.build.log" >&2
        exit 1
    }
done

# The value of libFuzzer's final `stat::NAME:` line in log $1.
stat() { grep -a "^stat::$2:" "$1" | tail -n1 | awk '{print $2}' || true; }
# The last value of a `NAME: VALUE` field of libFuzzer's status lines in log $1.
status() { grep -a -o "$2: [0-9]*" "$1" | tail -n1 | awk '{print $2}' || true; }

rows=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$logs/$t.log
    echo
    echo "== $t: ${seconds}s"
    start=$(date +%s)
    TIMEFORMAT='%U %S'
    set +e
    { time cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "${build_args[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${runs[@]}" "${extra[@]}" >"$log" 2>&1; } 2>"$logs/$t.time"
    code=$?
    set -e
    wall=$(($(date +%s) - start))
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$logs/$t.time")
    # Inputs libFuzzer saved for a crash, an out-of-memory, a timeout or a leak.
    crashes=$(grep -a -c -E "Test unit written to .*/(crash|oom|timeout|leak)-" "$log" || true)
    if [[ $code -ne 0 && $crashes -eq 0 ]]; then
        crashes="exit $code"
    fi
    execs=$(stat "$log" number_of_executed_units)
    if [[ -z $execs ]]; then
        # No final stats after a crash: the last status line's count (#N) is the closest.
        execs=$(grep -a -o '^#[0-9]*' "$log" | tail -n1 | tr -d '#' || true)
    fi
    rate=$(stat "$log" average_exec_per_sec)
    per_cpu=$(awk -v e="${execs:-0}" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? e / c : 0) }')
    cov=$(status "$log" cov)
    corp=$(status "$log" corp)
    echo "executions ${execs:-?}, exec/s ${rate:-?} (wall), ${per_cpu} per CPU second (${cpu} CPU s in ${wall} s)," \
        "coverage ${cov:-?} edges, corpus ${corp:-?}, crashes ${crashes}"
    grep -a -E "^(thread '.*' panicked|invariant|SOPLAB_FUZZ_LAX:|artifact_prefix=)|panicked at|Test unit written" "$log" \
        | head -n 8 || true
    [[ $crashes != 0 ]] && failed=1
    rows+=("$t|$seconds|${execs:-?}|${rate:-?}|$per_cpu|${cov:-?}|${corp:-?}|$crashes")
done

echo
echo "summary: $(date -u +%Y-%m-%d), commit $commit, $(rustc "${toolchain[@]}" --version), sanitizer $sanitizer," \
    "lax: ${SOPLAB_FUZZ_LAX:-none}"
printf '%-12s %8s %12s %8s %10s %6s %7s %8s\n' target seconds executions exec/s exec/cpu-s cov corpus crashes
for r in "${rows[@]}"; do
    IFS='|' read -r t s e x c v p k <<<"$r"
    printf '%-12s %8s %12s %8s %10s %6s %7s %8s\n' "$t" "$s" "$e" "$x" "$c" "$v" "$p" "$k"
done
exit $failed
