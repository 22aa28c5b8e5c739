#!/usr/bin/env bash
# Run the quick benchmark (train -> prune -> export -> bench -> report) and print the
# answer and the verdict table into the CI log. Output: runs/ci/ (report in runs/ci/report/).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
slimdeploy run --quick --config benchmarks/ci.toml --force --quiet
echo "quick benchmark finished in $(( $(date +%s) - start )) s -> runs/ci/report/"
# The plain-words answer and the verdict table: everything before the models table.
awk '/^## Models/ { exit } { print }' runs/ci/report/report.md
