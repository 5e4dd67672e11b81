# Helpers for Mimic's CLI tests (sourced): scratch directory, assertions on exit codes and messages.
# Expects MIMIC (the executable), MPIEXEC and MIMIC_PYTHON in the environment (set by ctest).
set -uo pipefail
: "${MIMIC:?MIMIC must point at the mimic executable}"
MPIEXEC=${MPIEXEC:-mpiexec}
MIMIC_PYTHON=${MIMIC_PYTHON:-/usr/bin/python3}
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

scratch() {
  local d="$PWD/scratch/cli.$1"
  rm -rf "$d" && mkdir -p "$d" && echo "$d"
}

die() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_fail <pattern> <command...>: the command must exit non-zero and print exactly one stderr line
# matching the pattern.
expect_fail() {
  local pattern=$1
  shift
  local out err rc
  out=$(mktemp) err=$(mktemp)
  "$@" >"$out" 2>"$err"
  rc=$?
  [ $rc -ne 0 ] || die "expected failure, got exit 0 from: $*"
  grep -q -- "$pattern" "$err" || { cat "$err" >&2; die "stderr does not match '$pattern'"; }
  local lines
  lines=$(grep -c . "$err")
  [ "$lines" -eq 1 ] || { cat "$err" >&2; die "expected a one-line error, got $lines lines"; }
  echo "ok: exit $rc, $(cat "$err")"
  rm -f "$out" "$err"
}
