#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, property and end-to-end tests with real `faultline node`
# processes), the pymongo client tests against a real member, and the Node.js tutorial tests (mongoose,
# mongosh, the driver's streaming monitoring, ... against real replica sets; and the counterexample viewer in
# headless Chromium; tests/node), and MongoDB's unified specification tests (tests/spec, pymongo against a
# three-member replica set, about 90 s; fails on a failure outside tests/spec/expected-failures.txt or a
# listed test that passes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
if [ ! -x .venv/bin/python ] || [ ! -d tests/node/node_modules ] || ! command -v chromium >/dev/null; then
  ./scripts/setup-test-deps.sh
fi
.venv/bin/python tests/python/run.py --bin target/debug/faultline
.venv/bin/python -m unittest discover -s tests/spec -p 'test_*.py'
.venv/bin/python tests/spec/unified.py --bin target/debug/faultline --expected-failures tests/spec/expected-failures.txt
FAULTLINE_BIN=target/debug/faultline node --test --test-concurrency=1 tests/node/
