#!/usr/bin/env bash
# Installs what is missing, builds Mimic, and runs every test with ctest (unit, MPI at 1/2/4 ranks,
# CLI, Python golden tests). Usage: tests/run.sh [ctest arguments], e.g. tests/run.sh -R dataset
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
jobs/install_deps.sh
# onnxruntime (not packaged in Debian 12) runs the exported students in the ONNX tests.
/usr/bin/python3 -c 'import onnxruntime' 2>/dev/null ||
  /usr/bin/python3 -m pip install --quiet --break-system-packages --no-deps onnxruntime==1.19.2
# shellcheck source=../jobs/env.sh
source jobs/env.sh
jobs/build.sh
cd build
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@"
echo "tests/run.sh: finished in $(( $(date +%s) - start )) s"
