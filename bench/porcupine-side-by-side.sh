#!/usr/bin/env bash
# Side by side: Faultline's linearizability checker against Porcupine, in process, on the same histories.
#
# Usage: bench/porcupine-side-by-side.sh PORCUPINE_CHECKOUT [TESTDATA_DIR]
#
# PORCUPINE_CHECKOUT is a checkout of github.com/anishathalye/porcupine (e.g. at tag v1.3.0) that the user
# provides; nothing of it enters this repository. The script copies it to a temporary directory, adds one
# test file of its own that times `CheckEvents` with Porcupine's own log parsers and models (etcd for the
# Jepsen logs, kv for the key-value logs), and builds Porcupine's test binary with `go test -c`. The Faultline
# side is `cargo run --release -p faultline-checker --example side_by_side`, which times `linear::check`.
# Both exclude reading and parsing; both repeat a check until 0.3 s have been spent and keep the fastest run,
# and the two sides take turns for ROUNDS rounds (default 3; environment variable), keeping the median of
# each file's per-round times, so that other load on the machine hits both alike.
#
# Histories: every row of TESTDATA_DIR/expected.tsv (default ../shared/testdata next to the repository)
# that Porcupine can parse (Jepsen etcd logs, kv logs; Porcupine has no EDN reader, so the Knossos rows are
# timed for Faultline only and left out of the totals), plus generated 50-client, 10-key kv histories, valid
# and with a planted stale get. Prints one table: per file, both verdicts and times, the ratio, and totals.
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '4p' "$0" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
checkout=$(cd "$1" && pwd)
testdata=$(cd "${2:-$repo/../shared/testdata}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Porcupine: a private copy of the checkout plus our timing test, built as Porcupine's own test binary.
mkdir "$work/porcupine"
(cd "$checkout" && tar --exclude=.git -cf - .) | tar -xf - -C "$work/porcupine"
cat > "$work/porcupine/faultline_side_by_side_test.go" <<'GO'
package porcupine

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFaultlineSideBySide times CheckEvents on each "path<TAB>format" row of $FAULTLINE_SIDE_BY_SIDE.
func TestFaultlineSideBySide(t *testing.T) {
	list := os.Getenv("FAULTLINE_SIDE_BY_SIDE")
	if list == "" {
		t.Skip("FAULTLINE_SIDE_BY_SIDE is not set")
	}
	file, err := os.Open(list)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		row := scanner.Text()
		if row == "" || strings.HasPrefix(row, "#") {
			continue
		}
		cols := strings.Split(row, "\t")
		path := cols[0]
		full := path
		if !filepath.IsAbs(full) {
			full = filepath.Join(filepath.Dir(list), path)
		}
		var model Model
		var events []Event
		switch cols[1] {
		case "jepsen-log":
			model, events = etcdModel, parseJepsenLog(full)
		case "porcupine-kv":
			model, events = kvModel, parseKvLog(full)
		default:
			fmt.Printf("%s\t-\t-\n", path)
			continue
		}
		start := time.Now()
		fastest := time.Duration(-1)
		ok := false
		for fastest < 0 || time.Since(start) < 300*time.Millisecond {
			run := time.Now()
			ok = CheckEvents(model, events)
			if took := time.Since(run); fastest < 0 || took < fastest {
				fastest = took
			}
		}
		ms := float64(fastest.Nanoseconds()) / 1e6
		fmt.Printf("%s\t%t\t%.3f\n", path, ok, ms)
	}
}
GO
echo "building Porcupine's test binary ($(go version | cut -d' ' -f3))" >&2
(cd "$work/porcupine" && GOFLAGS=-mod=mod GOPROXY=off go test -c -o "$work/porcupine.test" .)

echo "building Faultline's side (release)" >&2
(cd "$repo" && cargo build -q --release -p faultline-checker --example side_by_side)
faultline="$repo/target/release/examples/side_by_side"

# The list: expected.tsv's rows with absolute paths, then the generated histories.
grep -v '^#' "$testdata/expected.tsv" | awk -F'\t' -v d="$testdata" 'NF >= 5 { $1 = d "/" $1; print }' OFS='\t' \
    > "$work/list.tsv"
"$faultline" generate "$work/generated" >> "$work/list.tsv"

# Rounds, taking turns; each file keeps the median of its rounds' times (the lower one of the middle two for an
# even count) and the last verdict, which never varies.
median() {
    sort -t"$(printf '\t')" -k1,1 -k3,3g |
        awk -F'\t' '{ n[$1]++; ms[$1, n[$1]] = $3; v[$1] = $2 }
            END { for (p in n) print p "\t" v[p] "\t" ms[p, int((n[p] + 1) / 2)] }' OFS='\t'
}
: > "$work/faultline.all"
: > "$work/porcupine.all"
for round in $(seq "${ROUNDS:-3}"); do
    echo "round $round" >&2
    "$faultline" time "$work/list.tsv" >> "$work/faultline.all"
    (cd "$work/porcupine" && FAULTLINE_SIDE_BY_SIDE="$work/list.tsv" "$work/porcupine.test" \
        -test.run '^TestFaultlineSideBySide$' -test.count 1 | grep -P '\t' >> "$work/porcupine.all")
done
median < "$work/faultline.all" > "$work/faultline.tsv"
median < "$work/porcupine.all" > "$work/porcupine.tsv"

# One table: path, expected, Faultline verdict and ms, Porcupine verdict and ms, Porcupine/Faultline.
awk -F'\t' -v d="$testdata/" -v g="$work/generated/" '
    FILENAME == ARGV[1] { expected[$1] = $5; order[++n] = $1; next }
    FILENAME == ARGV[2] { fv[$1] = $2; fms[$1] = $3; next }
    { pv[$1] = $2; pms[$1] = $3 }
    END {
        printf "%-40s %-6s %-8s %10s %-8s %10s %8s\n", "history", "expect", "faultln", "ms", "porcup", "ms", "speedup"
        for (i = 1; i <= n; i++) {
            p = order[i]; name = p; sub(d, "", name); sub(g, "generated/", name)
            if (pv[p] == "-" || pv[p] == "") {
                printf "%-40s %-6s %-8s %10.3f %-8s %10s %8s\n", name, expected[p], fv[p], fms[p], "-", "-", "-"
                fonly += fms[p]; continue
            }
            ratio = fms[p] > 0 ? pms[p] / fms[p] : 0
            printf "%-40s %-6s %-8s %10.3f %-8s %10.3f %7.2fx%s\n", name, expected[p], fv[p], fms[p], pv[p], pms[p], ratio,
                (ratio < 1 ? "  SLOWER" : "")
            ft += fms[p]; pt += pms[p]; both++
            if (ratio < 1) slower++
            if (fv[p] != expected[p]) wrong++
        }
        printf "%-40s %-6s %-8s %10.3f %-8s %10.3f %7.2fx\n", "TOTAL (" both " files both ran)", "", "", ft, "", pt, (ft > 0 ? pt / ft : 0)
        printf "Faultline-only rows (Knossos EDN): %.3f ms; files where Faultline was slower: %d; verdicts differing from expected: %d\n", fonly, slower + 0, wrong + 0
    }' "$work/list.tsv" "$work/faultline.tsv" "$work/porcupine.tsv"
