#!/usr/bin/env bash
# Large histories (issue 17): time and peak memory of `faultline check` on generated JSONL files.
#
# Usage: bench/large-histories.sh [WORK_DIR]
#
# Builds the release binary, writes with `faultline generate register` (into WORK_DIR, default a temporary
# directory removed at the end; the big file takes about 2.1 GB):
#   - OPS operations (default 10,000,000) over KEYS keys (10,000) by PROCESSES processes (50), 1% crashed,
#     valid, and the same with a stale read planted in a random key;
#   - one key, SINGLE_OPS operations (100,000) by 50 processes, checked with `--timeout TIMEOUT` (30s);
# then checks each under `/usr/bin/time -v` and prints one line per file: wall and CPU time, peak RSS, verdict.
# Files of 64 MiB or more are checked streamed (see README, "Larger histories").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ops=${OPS:-10000000}
keys=${KEYS:-10000}
processes=${PROCESSES:-50}
single_ops=${SINGLE_OPS:-100000}
timeout=${TIMEOUT:-30s}
if [ $# -ge 1 ]; then
    work=$(mkdir -p "$1" && cd "$1" && pwd)
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

(cd "$repo" && cargo build --release -q -p faultline)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/faultline

generate() { # OUT FLAGS...
    local out=$1
    shift
    [ -s "$out" ] || "$bin" generate register "$out" "$@" >&2
}
generate "$work/many-keys-ok.jsonl" --ops "$ops" --keys "$keys" --processes "$processes"
generate "$work/many-keys-bad.jsonl" --ops "$ops" --keys "$keys" --processes "$processes" --planted-stale
generate "$work/one-key.jsonl" --ops "$single_ops" --keys 1 --processes 50

measure() { # FILE FLAGS...
    local file=$1
    shift
    local log=$work/time.log
    local verdict
    verdict=$(/usr/bin/time -v "$bin" check "$file" "$@" 2>"$log" | grep '^verdict:' || true)
    local wall rss user system
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    user=$(sed -n 's/.*User time (seconds): //p' "$log")
    system=$(sed -n 's/.*System time (seconds): //p' "$log")
    printf '%-20s %6s MB %9s wall %7.1f s CPU %5d MiB peak RSS  %s\n' "$(basename "$file")" \
        "$(( $(stat -c %s "$file") / 1000000 ))" "$wall" "$(echo "$user + $system" | bc)" "$(( rss / 1024 ))" \
        "${verdict:-no verdict}"
}
# Wall times depend on what else runs: the load average is printed with them; CPU time (user + system) less so.
echo "faultline check on $(nproc) cores, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg)"
measure "$work/many-keys-ok.jsonl"
measure "$work/many-keys-bad.jsonl"
measure "$work/one-key.jsonl" --timeout "$timeout"
