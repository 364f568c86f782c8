#!/usr/bin/env python3
"""Time breakdown of majority writes, from the `write_path` trace events of a set's member logs.

Usage: bench/write-path-breakdown.py SET_DIR [SKIP]

SET_DIR is a set's directory (holding nodes/<n>/node.log), e.g. the `set-3` directory of a
`faultline bench throughput --nodes 3 --clients 1 --write-concern majority` run made with
`RUST_LOG=info,write_path=trace` in the environment (the members inherit it). The first SKIP writes
(default 200) are left out as warm-up. With one client the writes do not overlap, so every step of one write
can be found by its oplog timestamp: the primary's command and commit, the getMore reply that carries the
entry, each secondary's receipt, journal fsync and apply (which run side by side: the batch is journaled
first), position report, the primary's receipt of that report,
the commit point's advance and the waiter's wake-up. The members run on one machine, so their clocks agree.
Prints, per step, the median and p90 of the time since the previous step (for the secondary whose report
advanced the commit point first). The primary's own fsync runs beside the chain (its entries are published
before it), so it is listed apart, as the time from its commit.
"""
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
            fields = dict(FIELD.findall(m.group(3)))
            events.append((stamp, m.group(2), fields))
    return events


def first(events, name, pred):
    for stamp, event, fields in events:
        if event == name and pred(fields):
            return stamp
    return None


def main():
    set_dir = sys.argv[1]
    skip = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    logs = {os.path.basename(os.path.dirname(p)): parse(p) for p in sorted(glob.glob(f"{set_dir}/nodes/*/node.log"))}
    primary = max(logs, key=lambda n: sum(1 for e in logs[n] if e[1] == "cmd.acked"))
    secondaries = [n for n in logs if n != primary]
    p = logs[primary]
    starts = [e[0] for e in p if e[1] == "cmd.start"]
    committed = [(e[0], int(e[2]["ts"])) for e in p if e[1] == "cmd.committed"]
    index = {}
    for name, events in logs.items():
        for stamp, event, fields in events:
            index.setdefault((name, event), []).append((stamp, fields))

    def at(name, event, ts, key="ts", after=0.0):
        for stamp, fields in index.get((name, event), []):
            if stamp >= after and int(fields.get(key, 0)) >= ts:
                return stamp
        return None

    def commit_and_sync(name, ts, after):
        """When a member's writer made the entry visible, and when it was on disk. A group committed with
        fsync (`durable=true`, before the writer published ahead of its fsync) is both at once; otherwise the
        fsync is the next `writer.flushed` covering the entry."""
        for stamp, fields in index.get((name, "writer.committed"), []):
            if stamp >= after and int(fields.get("ts", 0)) >= ts:
                if fields.get("durable") == "true":
                    return stamp, stamp
                return stamp, at(name, "writer.flushed", ts, after=stamp)
        return None, None

    steps = {}
    order = []

    def add(label, value):
        if label not in steps:
            order.append(label)
            steps[label] = []
        steps[label].append(value * 1000)

    start_i = 0
    for n, (stamp, ts) in enumerate(committed):
        if n < skip:
            continue
        while start_i + 1 < len(starts) and starts[start_i + 1] <= stamp:
            start_i += 1
        t0 = starts[start_i] if starts and starts[start_i] <= stamp else None
        t_commit, t_synced = commit_and_sync(primary, ts, stamp - 1)
        t_reply = at(primary, "getmore.reply", ts, after=stamp - 1)
        best = None
        for s in secondaries:
            recv = at(s, "fetcher.received", ts, after=stamp - 1)
            # A secondary journals a fetched batch before it applies it: the fsync starts first and runs beside
            # the apply, so it is the first flush covering the entry after the fetch.
            applied, _ = commit_and_sync(s, ts, stamp - 1)
            synced = at(s, "writer.flushed", ts, after=recv) if recv is not None else None
            seen = at(s, "positions.seen", ts, key="durable_ts", after=stamp - 1)
            sent = at(s, "position.send", ts, key="durable_ts", after=stamp - 1)
            got = at(primary, "position.received", ts, key="durable_ts", after=stamp - 1)
            if None in (recv, applied, synced, seen, sent, got):
                continue
            if best is None or got < best[-1]:
                best = (recv, applied, synced, seen, sent, got)
        t_cp = at(primary, "commit_point.advanced", ts, after=stamp - 1)
        t_wake = at(primary, "waiter.satisfied", ts, after=stamp - 1)
        t_ack = at(primary, "cmd.acked", ts, after=stamp - 1)
        if None in (t0, t_commit, t_synced, t_reply, t_cp, t_wake, t_ack) or best is None:
            continue
        recv, applied, synced, seen, sent, got = best
        add("primary: command → storage commit (visible)", t_commit - t0)
        add("  (beside the chain) primary: visible → fsync done", t_synced - t_commit)
        add("primary: commit → getMore reply with the entry", t_reply - t_commit)
        add("network: getMore reply → secondary fetcher has it", recv - t_reply)
        add("  (beside the fsync) secondary: fetched → batch applied (visible)", applied - recv)
        add("secondary: fetched → journaled and fsync done", synced - recv)
        add("secondary: fsync and apply both done → position loop sees it", seen - max(applied, synced))
        add("secondary: position loop → replSetUpdatePosition sent", sent - seen)
        add("network: update sent → primary handles it", got - sent)
        add("primary: position handled → commit point advanced", t_cp - got)
        add("primary: commit point → write-concern waiter woken", t_wake - t_cp)
        add("primary: waiter woken → reply", t_ack - t_wake)
        add("TOTAL command → reply (server side)", t_ack - t0)
    if not order:
        print("no complete writes found (was RUST_LOG=info,write_path=trace set?)")
        return 1
    count = len(steps[order[0]])
    print(f"{count} writes (primary {primary}, secondaries {', '.join(secondaries)}), milliseconds:")
    print(f"{'step':<66} {'median':>8} {'p90':>8}")
    for label in order:
        values = sorted(steps[label])
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"{label:<66} {statistics.median(values):8.3f} {p90:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
