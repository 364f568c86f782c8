#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: pymongo (the second real client) into a
# project-local virtualenv at .venv; the Node.js clients of the tutorial tests (mongodb, mongoose, mongosh,
# pinned in tests/node/package-lock.json) with `npm ci`; and a JDK with the MongoDB Java driver (Debian's
# default-jdk-headless, libmongodb-java) for the Java legacy-driver test; and Debian's headless-capable
# Chromium for the viewer's browser test (tests/node/viewer.test.mjs). Idempotent and quiet; safe to run on
# every CI start.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

# Node clients: `npm ci` when node_modules is missing or was installed from another package-lock.json.
lock_sum=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
stamp=tests/node/node_modules/.faultline-lock-sha256
if [ ! -d tests/node/node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" >"$stamp"
fi

# Java: the JDK and the legacy MongoDB Java driver, from Debian's packages.
if [ ! -f /usr/share/java/mongo-java-driver.jar ] || ! command -v javac >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends default-jdk-headless libmongodb-java >/dev/null
fi

# Chromium: the browser the counterexample viewer's end-to-end test drives over the DevTools protocol.
if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
