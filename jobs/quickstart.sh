#!/usr/bin/env bash
# The main job: installs what is missing, builds Mimic, and runs the Fashion-MNIST pipeline on 2 ranks
# (import -> teachers -> transfer set -> labels -> students -> eval), ending with a one-screen summary.
# Usage: jobs/quickstart.sh            (outputs under run/quickstart, or $MIMIC_RUN_DIR)
#        NP=4 jobs/quickstart.sh       (ranks; default: the number of cores, at least 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$(date +%s)

jobs/install_deps.sh
# shellcheck source=env.sh
source jobs/env.sh
jobs/build.sh
mimic="$root/build/mimic"
np=${NP:-$(nproc)}
[ "$np" -ge 2 ] || np=2
run=${MIMIC_RUN_DIR:-$root/run/quickstart}
mkdir -p "$run"
log="$run/quickstart.log"
: >"$log"
summary=()

# step <name> <command...>: runs one stage, tees its output to the log, records its wall time.
step() {
  local name=$1
  shift
  local s
  s=$(date +%s)
  echo "== $name: $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  summary+=("$(printf '%-22s %5d s' "$name" $(($(date +%s) - s)))")
}

mpirun=(mpirun -n "$np")

step "data import" "${mpirun[@]}" "$mimic" data import --out-dir "$run/data" --val 5000

echo
echo "================================ Mimic quickstart summary ================================"
"$mimic" --version | head -1
echo "ranks: $np   outputs: $run   log: $log"
echo
echo "stage                   time"
printf '%s\n' "${summary[@]}"
echo
grep -h "^  .*\.h5: .* rows" "$log" | sed 's/^  /data  /' || true
echo "total: $(($(date +%s) - t0)) s"
