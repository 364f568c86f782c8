#!/usr/bin/env bash
# Refreshes the pinned copy of MongoDB's specification tests (unified test format JSON files) under
# tests/spec/data/ from a git checkout of https://github.com/mongodb/specifications (a work tree or a bare
# repository). Usage: scripts/refresh-spec-tests.sh PATH_TO_SPECIFICATIONS_GIT [COMMIT]
# The copy keeps the repository's licence (LICENSE.md) and tests/spec/data/README.md names the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: scripts/refresh-spec-tests.sh PATH_TO_SPECIFICATIONS_GIT [COMMIT]}
rev=${2:-HEAD}
commit=$(git -C "$src" rev-parse "$rev^{commit}")
date=$(git -C "$src" show -s --format=%cI "$commit")
dest=tests/spec/data

# suite name -> directory of its unified JSON tests in the specifications repository
suites=(
  "crud source/crud/tests/unified"
  "retryable-writes source/retryable-writes/tests/unified"
  "retryable-reads source/retryable-reads/tests/unified"
  "sessions source/sessions/tests"
  "causal-consistency source/causal-consistency/tests"
  "change-streams source/change-streams/tests/unified"
  "command-monitoring source/command-logging-and-monitoring/tests/monitoring"
  "server-discovery-and-monitoring source/server-discovery-and-monitoring/tests/unified"
)

rm -rf "$dest"
mkdir -p "$dest"
git -C "$src" show "$commit:LICENSE.md" >"$dest/LICENSE.md"
for entry in "${suites[@]}"; do
  read -r suite dir <<<"$entry"
  mkdir -p "$dest/$suite"
  git -C "$src" ls-tree --name-only "$commit" "$dir/" | grep -E '\.json$' | while read -r path; do
    git -C "$src" show "$commit:$path" >"$dest/$suite/$(basename "$path")"
  done
done

{
  echo "# MongoDB specification tests (pinned copy)"
  echo
  echo "JSON test files of the unified test format from the MongoDB specifications repository,"
  echo "https://github.com/mongodb/specifications, commit \`$commit\` ($date)."
  echo "They are © MongoDB, Inc. and licensed under Creative Commons Attribution-NonCommercial-ShareAlike 3.0"
  echo "United States (see LICENSE.md in this directory); they are copied unmodified."
  echo
  echo "| suite | source directory | files |"
  echo "|---|---|---|"
  for entry in "${suites[@]}"; do
    read -r suite dir <<<"$entry"
    echo "| \`$suite\` | \`$dir\` | $(find "$dest/$suite" -name '*.json' | wc -l) |"
  done
  echo
  echo "Refresh with \`scripts/refresh-spec-tests.sh PATH_TO_SPECIFICATIONS_GIT [COMMIT]\`; run with"
  echo "\`tests/spec/unified.py\` (see tests/spec/README.md)."
} >"$dest/README.md"
echo "pinned $commit into $dest"
