#!/usr/bin/env bash
# Installs what is missing, builds Mimic, and runs every test with ctest (unit, MPI at 1/2/4 ranks,
# CLI, Python golden tests). Usage: tests/run.sh [ctest arguments], e.g. tests/run.sh -R dataset
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
jobs/install_deps.sh
# shellcheck source=../jobs/env.sh
source jobs/env.sh
jobs/build.sh
cd build
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@"
echo "tests/run.sh: finished in $(( $(date +%s) - start )) s"
