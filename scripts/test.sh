#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, property and end-to-end tests with real `faultline node`
# processes) and the pymongo client tests against a real member.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
if [ ! -x .venv/bin/python ]; then
  ./scripts/setup-test-deps.sh
fi
.venv/bin/python tests/python/run.py --bin target/debug/faultline
