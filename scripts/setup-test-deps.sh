#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: pymongo (the second real client) into a
# project-local virtualenv at .venv. Idempotent; safe to run on every CI start.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
