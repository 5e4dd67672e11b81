#!/usr/bin/env bash
# Configures and builds Mimic into build/ (Release, Ninja) with Debian's packages or -DKokkos_ROOT=...
# Prints ninja's [n/N] progress thinned to every 10% (the full output goes to build/build.log), and says
# "up to date" only when ninja had nothing to rebuild.
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
start=$(date +%s)
set +e
ninja -C "$build" -j"$(nproc)" 2>&1 | tee "$build/build.log" | {
  shown=-10
  while IFS= read -r line; do
    [[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]] || continue
    [ "${BASH_REMATCH[1]}" -gt 0 ] || continue
    n=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
    [ "$n" -ne 1 ] || echo "build: $total steps to run (ninja; full output in $build/build.log)"
    pct=$((100 * n / total))
    if [ "$pct" -ge $((shown + 10)) ] || [ "$n" -eq "$total" ]; then
      echo "build: [$n/$total] $pct%"
      shown=$((pct - pct % 10))
    fi
  done
}
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  grep -E -A8 "error|FAILED" "$build/build.log" | head -60 >&2
  echo "build: compilation failed (full log: $build/build.log)" >&2
  exit 1
fi
if grep -q "^ninja: no work to do" "$build/build.log"; then
  echo "build: $build/mimic is up to date (nothing to rebuild)"
else
  echo "build: $build/mimic built in $(($(date +%s) - start)) s ($(grep -c '^\[[0-9]*/[0-9]*\]' "$build/build.log") steps)"
fi
