#!/usr/bin/env python3
"""Runs MongoDB's unified-format specification tests (tests/spec/data/) against a replica set of real
`faultline node` processes, with pymongo as the driver.

Written from the unified test format's specification (source/unified-test-format/unified-test-format.md in
https://github.com/mongodb/specifications): entities, operations, expected results, errors and events, the
special matching operators, runOnRequirements, initialData and outcome. Prints passed / failed / skipped per
suite; every skipped test is counted and named with its reason. With --expected-failures FILE the exit code
is 1 when a test outside the file fails or a test inside it passes (so the list only shrinks).

    .venv/bin/python tests/spec/unified.py --bin target/debug/faultline [--suite crud ...] [--filter REGEX]
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from spec_runner.cluster import ReplicaSet  # noqa: E402
from spec_runner.expected import ExpectedFailures  # noqa: E402
from spec_runner.runner import SUITES, FileRunner, Tally  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/debug/faultline", help="the faultline binary")
    parser.add_argument("--data", default=os.path.join(HERE, "data"), help="the pinned test files")
    parser.add_argument("--suite", action="append", help=f"suites to run (default: all of {', '.join(SUITES)})")
    parser.add_argument("--filter", help="run only tests whose id (suite/file :: description) matches this regex")
    parser.add_argument("--expected-failures", help="fail on a failure outside this file or a listed pass")
    parser.add_argument("--write-failures", help="write every failing test with its reason to this file")
    parser.add_argument("--members", type=int, default=3, help="replica-set members to start (default 3)")
    parser.add_argument("--summary", help="append the per-suite table (Markdown) to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every test's outcome")
    args = parser.parse_args()

    suites = args.suite or list(SUITES)
    for suite in suites:
        if suite not in SUITES:
            parser.error(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    pattern = re.compile(args.filter) if args.filter else None
    expected = ExpectedFailures.load(args.expected_failures) if args.expected_failures else None

    started = time.monotonic()
    tally = Tally()
    with ReplicaSet(args.bin, args.members) as cluster:
        for suite in suites:
            directory = os.path.join(args.data, suite)
            for name in sorted(os.listdir(directory)):
                if name.endswith(".json"):
                    FileRunner(cluster, suite, os.path.join(directory, name), tally, pattern, args.verbose).run()
    elapsed = time.monotonic() - started

    table = tally.table(suites)
    print(table)
    print(f"{tally.total('passed')} passed, {tally.total('failed')} failed, {tally.total('skipped')} skipped "
          f"in {elapsed:.0f}s")
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as out:
            out.write(table + "\n")
    if args.write_failures:
        ExpectedFailures.write(args.write_failures, tally.failures)
    if expected is None:
        return 0 if not tally.failures else 1
    unexpected, fixed = expected.compare(tally.failures, tally.passed_ids, pattern, suites)
    for test_id, reason in unexpected:
        print(f"UNEXPECTED FAILURE {test_id}: {reason}")
    for test_id in fixed:
        print(f"NOW PASSES (remove it from the expected failures) {test_id}")
    print(f"expected failures: {len(unexpected)} unexpected, {len(fixed)} now passing")
    return 1 if unexpected or fixed else 0


if __name__ == "__main__":
    sys.exit(main())
