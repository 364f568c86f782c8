#!/usr/bin/env python3
"""Where a write's time goes under concurrent load, from the `write_path` trace events of a set's member logs.

Usage: bench/write-path-load.py SET_DIR [SKIP_SECONDS]

SET_DIR is a set's directory (holding nodes/<n>/node.log) of a `faultline bench throughput --nodes 3
--clients 32 --write-concern majority --j true` run made with `RUST_LOG=info,write_path=trace` in the
environment. Events in the first SKIP_SECONDS (default 1) are left out as warm-up.

With many clients the writes overlap, so a command's start cannot be paired with its commit by order (the
events carry no connection). Two views are printed instead:

1. Mean time per phase on the primary, without pairing: over the same set of writes, the sum of the phase's
   end times minus the sum of its start times is the total time spent in it (Little's law), so
   `command → committed` (queueing for the writer, the group's run and commit, and, for `j: true`, its fsync)
   and `committed → acknowledged` (waiting for a majority) are exact means. The writer's own figures (group
   sizes, run, commit and fsync times, how busy it was) split the first phase into service and queueing.
2. The replication chain of each committed entry, found by oplog timestamp as in write-path-breakdown.py (first
   event at or after the previous step whose timestamp covers the entry): getMore reply, each secondary's
   receipt, apply, fsync, position report, the primary's receipt, commit point, waiter, reply. Medians and p90.
"""
import bisect
import glob
import os
import re
import statistics
import sys
from datetime import datetime

LINE = re.compile(r"^(\S+Z)\s+TRACE\s+(?:\S+:\s+)*?([a-z_]+\.[a-z_]+)(.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


def parse(path):
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            if "TRACE" not in line:
                continue
            m = LINE.match(line.strip())
            if not m:
                continue
            stamp = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            events.append((stamp, m.group(2), dict(FIELD.findall(m.group(3)))))
    return events


class Series:
    """One member's events of one kind, in time order, searchable by (time, oplog timestamp)."""

    def __init__(self, items, key):
        self.stamps = [s for s, _ in items]
        self.ts = [int(f.get(key, 0)) for _, f in items]
        self.fields = [f for _, f in items]
        self.prefix_max = []
        top = -1
        for t in self.ts:
            top = max(top, t)
            self.prefix_max.append(top)

    def first(self, ts, after):
        """Time of the first event at or after `after` whose timestamp is at least `ts`."""
        i = max(bisect.bisect_left(self.stamps, after), bisect.bisect_left(self.prefix_max, ts))
        while i < len(self.stamps):
            if self.ts[i] >= ts:
                return self.stamps[i]
            i += 1
        return None


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def show(label, values, unit="ms"):
    if values:
        print(f"  {label:<62} {statistics.median(values):9.3f} {pct(values, 0.9):9.3f} {statistics.mean(values):9.3f}  {unit}")


def main():
    set_dir = sys.argv[1]
    skip = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    logs = {os.path.basename(os.path.dirname(p)): parse(p) for p in sorted(glob.glob(f"{set_dir}/nodes/*/node.log"))}
    primary = max(logs, key=lambda n: sum(1 for e in logs[n] if e[1] == "cmd.acked"))
    secondaries = [n for n in logs if n != primary]
    p = logs[primary]
    begin = min(e[0] for e in p if e[1] == "cmd.start") + skip
    end = max(e[0] for e in p if e[1] == "cmd.acked")

    def kind(events, name):
        return [(s, f) for s, n, f in events if n == name and s >= begin]

    # The same number of writes is left out of each list (a write's events are not paired, see above).
    all_starts = [s for s, name, _ in p if name == "cmd.start"]
    warm = sum(1 for s in all_starts if s < begin)
    starts = all_starts[warm:]
    committed = [(s, f) for s, name, f in p if name == "cmd.committed"][warm:]
    acked = [s for s, name, _ in p if name == "cmd.acked"][warm:]
    n = min(len(starts), len(committed), len(acked))
    span = end - begin
    print(f"primary {primary}, secondaries {', '.join(secondaries)}; {n} writes in {span:.2f} s after {skip} s of warm-up "
          f"({n / span:,.0f} writes/s)")
    print()
    print("1. mean time per phase on the primary (exact means, Little's law):")
    t_commit = [s for s, _ in committed]
    phase_a = (sum(t_commit[:n]) - sum(starts[:n])) / n * 1000
    phase_b = (sum(acked[:n]) - sum(t_commit[:n])) / n * 1000
    print(f"  command → committed (writer queue + group + fsync)            {phase_a:9.3f} ms")
    print(f"  committed → acknowledged (waiting for a majority)             {phase_b:9.3f} ms")
    print(f"  command → acknowledged                                        {phase_a + phase_b:9.3f} ms")
    print()
    print("   writer, per member:        median       p90      mean")
    for name in [primary] + secondaries:
        groups = [f for _, f in kind(logs[name], "writer.committed") if f.get("ts", "0") != "0"]
        # An fsync is an empty durable commit: the writer's own flush, or a durable job without entries (the
        # applier's journal task).
        flushes = [f for _, f in kind(logs[name], "writer.flushed") if "sync_us" in f]
        flushes += [
            {"sync_us": int(f["run_us"]) + int(f["commit_us"])}
            for _, f in kind(logs[name], "writer.committed")
            if f.get("ts", "0") == "0" and f.get("durable") == "true"
        ]
        if not groups:
            continue
        jobs = [int(f["jobs"]) for f in groups]
        run = [int(f["run_us"]) / 1000 for f in groups]
        commit = [int(f["commit_us"]) / 1000 for f in groups]
        sync = [int(f["sync_us"]) / 1000 for f in flushes]
        busy = (sum(run) + sum(commit) + sum(sync)) / 1000 / span
        print(f" {name}: {len(groups)} groups with entries ({len(groups) / span:,.0f}/s), {len(flushes)} fsyncs "
              f"({len(flushes) / span:,.0f}/s), writer busy {busy:.0%} of the time")
        show("jobs per group", jobs, "jobs")
        show("group run (the jobs' own work)", run)
        synced = sum(1 for f in groups if f.get("durable") == "true")
        show(f"group commit ({synced} of the groups with their fsync, the rest in memory)", commit)
        show("fsync (empty durable commit)", sync)
        if name == primary:
            per_job_service = sum(j * (r + c) for j, r, c in zip(jobs, run, commit)) / sum(jobs)
            fsync_mean = statistics.mean(sync) if sync else 0.0
            print(f"  → per write: group run+commit {per_job_service:.3f} ms, one fsync {fsync_mean:.3f} ms; the rest of "
                  f"command → committed, {phase_a - per_job_service - fsync_mean:.3f} ms, is queueing (for a group "
                  f"to start and for the fsync after it)")
    for name in secondaries:
        batches = [int(f.get("n", 0)) for _, f in kind(logs[name], "fetcher.received")]
        sends = kind(logs[name], "position.send")
        if batches:
            print(f" {name}: {len(batches)} fetched batches ({len(batches) / span:,.0f}/s), entries per batch median "
                  f"{statistics.median(batches):.0f}, p90 {pct(batches, 0.9)}; {len(sends)} position reports "
                  f"({len(sends) / span:,.0f}/s)")
    replies = [int(f.get("n", 0)) for _, f in kind(p, "getmore.reply")]
    received = kind(p, "position.received")
    print(f" {primary}: {len(replies)} getMore replies with entries, {len(received)} position reports received "
          f"({len(received) / span:,.0f}/s)")
    print()

    def series(name, event, key="ts"):
        return Series(kind(logs[name], event), key)

    reply = series(primary, "getmore.reply")
    cp = series(primary, "commit_point.advanced")
    wake = series(primary, "waiter.satisfied")
    ack = series(primary, "cmd.acked")
    flushed_p = series(primary, "writer.flushed")
    sec = {
        s: (
            series(s, "fetcher.received"),
            series(s, "writer.committed"),
            series(s, "writer.flushed"),
            series(s, "position.send", "durable_ts"),
            series(primary, "position.received", "durable_ts"),
        )
        for s in secondaries
    }
    steps, order = {}, []

    def add(label, value):
        if label not in steps:
            order.append(label)
            steps[label] = []
        steps[label].append(value * 1000)

    visible_p = series(primary, "writer.committed")
    for done, fields in committed:
        ts = int(fields["ts"])
        # `cmd.committed` comes after the primary's own fsync; the chain starts when the entry became visible.
        stamp = visible_p.first(ts, done - 1)
        if stamp is None:
            continue
        t_reply = reply.first(ts, stamp)
        t_synced = flushed_p.first(ts, stamp)
        best = None
        for s, (recv_s, applied_s, synced_s, sent_s, got_s) in sec.items():
            recv = recv_s.first(ts, stamp)
            applied = applied_s.first(ts, stamp)
            synced = synced_s.first(ts, stamp)
            sent = sent_s.first(ts, stamp)
            got = got_s.first(ts, stamp)
            if None in (recv, applied, synced, sent, got):
                continue
            if best is None or got < best[-1]:
                best = (recv, applied, synced, sent, got)
        t_cp = cp.first(ts, stamp)
        t_wake = wake.first(ts, stamp)
        t_ack = ack.first(ts, done)
        if None in (t_reply, t_synced, t_cp, t_wake, t_ack) or best is None:
            continue
        recv, applied, synced, sent, got = best
        add("(primary: visible → its own fsync done, beside the chain)", t_synced - stamp)
        add("primary: visible → getMore reply covering the entry", t_reply - stamp)
        add("network: getMore reply → secondary fetcher has it", recv - t_reply)
        add("secondary: fetched → applied (visible)", applied - recv)
        add("secondary: visible → fsync done", synced - applied)
        add("secondary: fsync → replSetUpdatePosition sent", sent - synced)
        add("network: update sent → primary handles it", got - sent)
        add("primary: position handled → commit point advanced", t_cp - got)
        add("primary: commit point → write-concern waiter woken", t_wake - t_cp)
        add("primary: waiter woken → reply", t_ack - t_wake)
        add("TOTAL visible on the primary → acknowledged", t_ack - stamp)
    print(f"2. replication chain of {len(steps.get('TOTAL visible on the primary → acknowledged', []))} committed writes (the "
          f"secondary whose report arrived first), ms: median, p90, mean")
    for label in order:
        show(label, steps[label])
    return 0


if __name__ == "__main__":
    sys.exit(main())
