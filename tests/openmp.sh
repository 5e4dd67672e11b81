#!/usr/bin/env bash
# Opt-in, outside CI: the ctest suite of a Mimic build against a Kokkos with the OpenMP backend, with
# MIMIC_TEST_THREADS (default 2) threads per rank, so that a kernel that races in parallel fails.
# Usage: tests/openmp.sh BUILD_DIR [ctest arguments]  (Debian's Kokkos has only Serial: build Kokkos 4.x
# with -DKokkos_ENABLE_OPENMP=ON, Kokkos Kernels with its BLAS TPL, then cmake -DKokkos_ROOT=...)
set -euo pipefail
build=$(cd "${1:?usage: tests/openmp.sh BUILD_DIR [ctest arguments]}" && pwd)
shift
if ! "$build/mimic" --version | grep -q "OpenMP"; then
  echo "tests/openmp.sh: $build/mimic does not run on Kokkos' OpenMP backend ($("$build/mimic" --version | grep -i kokkos))" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../jobs/env.sh
source "$root/jobs/env.sh"
export OMP_NUM_THREADS=${MIMIC_TEST_THREADS:-2} OPENBLAS_NUM_THREADS=1
# Unit-testing settings: no thread pinning, idle threads sleep (ranks x threads exceed the cores), and no
# Kokkos start-up warnings on stderr (the CLI tests expect one-line errors there).
export OMP_PROC_BIND=false OMP_WAIT_POLICY=passive KOKKOS_DISABLE_WARNINGS=1
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
