#!/usr/bin/env bash
# Side by side: a durable majority insert on three members, PostgreSQL's synchronous replication against
# Faultline's bundled engine, on this machine (issue #14).
#
# Usage: bench/pg-side-by-side.sh [SECONDS]        (default 10 s per measurement)
# Environment: ROUNDS (default 3); FAULTLINE, a faultline binary to use instead of building the release one.
#
# PostgreSQL's side is the shared anchor script `../shared/bench/pg-sync-anchor.sh CLIENTS SECONDS` (a primary
# with two streaming standbys and `synchronous_standby_names = 'ANY 1 (*)'`, pgbench inserting one row per
# transaction; it needs Debian's postgresql package and root, and installs the package with apt-get when it is
# missing). Faultline's side is `faultline bench throughput --nodes 3 --write-concern majority --j true` from
# the release build. The project itself does not depend on PostgreSQL: only this script calls it.
#
# The disk is shared and fsync latency swings with other load, so the two systems take turns (A B A B): each
# round measures 1 client on PostgreSQL, then on Faultline, then 32 clients on PostgreSQL, then on Faultline.
# After ROUNDS rounds it prints, per client count, the median of each figure and the ratios, as the issue's
# table; every single measurement is listed above it, so the spread shows. Faultline is measured twice a
# round: through the official driver (the issue's figure), and over raw connections (`--client wire`), which
# is how pgbench reaches PostgreSQL (libpq, no driver layer), so the two databases' own times compare too.
set -euo pipefail

seconds=${1:-10}
rounds=${ROUNDS:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
anchor="${PG_ANCHOR:-$repo/../shared/bench/pg-sync-anchor.sh}"
[ -x "$anchor" ] || [ -f "$anchor" ] || { echo "no PostgreSQL anchor script at $anchor" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

faultline="${FAULTLINE:-}"
if [ -z "$faultline" ]; then
    echo "building Faultline (release)" >&2
    (cd "$repo" && cargo build -q --release -p faultline)
    faultline="$repo/target/release/faultline"
fi

# One PostgreSQL measurement: prints "tps mean_ms".
pg() {
    local dir="$work/pg-$1-$2"
    mkdir -p "$dir"
    local out
    out=$(bash "$anchor" "$1" "$seconds" "$dir" 2>&1 | tail -n 1)
    rm -rf "$dir"
    local tps mean
    tps=$(sed -n 's/.*tps=\([0-9.]*\).*/\1/p' <<<"$out")
    mean=$(sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    [ -n "$tps" ] && [ -n "$mean" ] || { echo "PostgreSQL anchor failed: $out" >&2; exit 1; }
    echo "$tps $mean"
}

# One Faultline measurement with client $3 (driver or wire): prints "ops_per_sec mean_ms p50_ms errors".
fl() {
    local store="$work/fl-$1-$2-$3"
    "$faultline" bench throughput --nodes 3 --write-concern majority --j true --clients "$1" --client "$3" \
        --duration "${seconds}s" --store "$store" --json 2>"$store.log" >"$store.json" \
        || { echo "faultline bench failed:" >&2; cat "$store.log" >&2; exit 1; }
    python3 - "$store.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f'{r["ops_per_sec"]:.1f} {r["latency"]["mean_ms"]:.3f} {r["latency"]["p50_ms"]:.3f} {r["errors"]}')
PY
    rm -rf "$store" "$store.json" "$store.log"
}

: > "$work/all.tsv"
for round in $(seq "$rounds"); do
    for clients in 1 32; do
        read -r tps mean < <(pg "$clients" "$round")
        printf 'round %s  %2s clients  PostgreSQL  %8.0f tx/s   mean %6.2f ms\n' "$round" "$clients" "$tps" "$mean" >&2
        printf 'pg\t%s\t%s\t%s\t-\t0\n' "$clients" "$tps" "$mean" >> "$work/all.tsv"
        for client in driver wire; do
            read -r ops fmean p50 errors < <(fl "$clients" "$round" "$client")
            printf 'round %s  %2s clients  Faultline (%s)  %8.0f ops/s  mean %6.2f ms  p50 %6.2f ms  errors %s\n' \
                "$round" "$clients" "$client" "$ops" "$fmean" "$p50" "$errors" >&2
            system=$([ "$client" = driver ] && echo fl || echo fw)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$clients" "$ops" "$fmean" "$p50" "$errors" >> "$work/all.tsv"
        done
    done
done

python3 - "$work/all.tsv" "$rounds" "$seconds" <<'PY'
import statistics, sys, platform, os, datetime
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
rounds, seconds = sys.argv[2], sys.argv[3]
def med(system, clients, column):
    values = [float(r[column]) for r in rows if r[0] == system and r[1] == clients and r[column] != "-"]
    return statistics.median(values) if values else float("nan")
def spread(system, clients, column):
    values = [float(r[column]) for r in rows if r[0] == system and r[1] == clients]
    return f"{min(values):,.0f}–{max(values):,.0f}"
print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
      f"{platform.platform()}; load average {open('/proc/loadavg').read().split()[:3]}")
print(f"medians of {rounds} alternating rounds, {seconds} s each\n")
print("| 3 members, durable majority insert | PostgreSQL sync replication (pgbench, libpq) | Faultline (`bench throughput --nodes 3 --write-concern majority --j true`, official driver) | Faultline, raw wire client (`--client wire`) |")
print("|---|---|---|---|")
def cell(system, clients, mean, tps):
    ops, fmean, p50 = med(system, clients, 2), med(system, clients, 3), med(system, clients, 4)
    errors = sum(int(r[5]) for r in rows if r[0] == system and r[1] == clients)
    if clients == "1":
        verdict = f"mean {fmean / mean:.2f}× PostgreSQL's" if mean > 0 else "-"
    else:
        verdict = f"{ops / tps:.2f}× PostgreSQL's ops/s" if tps > 0 else "-"
    return (f"{ops:,.0f} ops/s, mean {fmean:.2f} ms, p50 {p50:.2f} ms ({verdict}"
            f"{', ' + str(errors) + ' errors' if errors else ''})")
for clients in ("1", "32"):
    tps, mean = med("pg", clients, 2), med("pg", clients, 3)
    label = "client" if clients == "1" else "clients"
    print(f"| {clients} {label} | {tps:,.0f} tx/s, mean {mean:.2f} ms | {cell('fl', clients, mean, tps)} | "
          f"{cell('fw', clients, mean, tps)} |")
print("\nspread (min–max per round): " + "; ".join(
    f"{c} clients: PostgreSQL {spread('pg', c, 2)} tx/s, Faultline {spread('fl', c, 2)} ops/s, "
    f"raw wire {spread('fw', c, 2)} ops/s" for c in ("1", "32")))
PY
