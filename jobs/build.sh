#!/usr/bin/env bash
# Configures and builds Mimic into build/ (Release, Ninja) with Debian's packages or -DKokkos_ROOT=...
# Usage: jobs/build.sh [extra cmake arguments]; BUILD_DIR overrides the build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  echo "build: cmake configuration failed (log above)" >&2
  exit 1
}
if ! ninja -C "$build" -j"$(nproc)" >"$build/build.log" 2>&1; then
  grep -E -A8 "error|FAILED" "$build/build.log" | head -60 >&2
  echo "build: compilation failed (full log: $build/build.log)" >&2
  exit 1
fi
echo "build: $build/mimic is up to date"
