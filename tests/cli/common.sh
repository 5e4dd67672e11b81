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

# error_lines <file>: the non-empty lines of a captured stderr, less Open MPI's launcher noise. When a rank
# ends the job with MPI_Abort, mpirun's libevent sometimes reports a pipe of the killed rank closed under it
# ("[warn] Epoll MOD(1) on fd 25 failed. ... Bad file descriptor"), at random (seen in 1 of 30 aborts at
# load 8): that line is mpirun's, not Mimic's, so the one-line checks leave it out.
error_lines() {
  grep -v -E '^\[warn\] Epoll [A-Z]+\([0-9]+\) on fd [0-9]+ failed' "$1" | grep -c .
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
  lines=$(error_lines "$err")
  [ "$lines" -eq 1 ] || { cat "$err" >&2; die "expected a one-line error, got $lines lines"; }
  echo "ok: exit $rc, $(cat "$err")"
  rm -f "$out" "$err"
}
