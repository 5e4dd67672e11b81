# Shared by the pipeline jobs (quickstart.sh, fashion_mnist_study.sh): set-up (install, environment,
# build), a step runner that skips finished stages and times them, and the helpers of the results table.

# pipeline_setup <config> <run dir> <log file name>: installs what is missing, builds, and sets t0, mimic,
# np (ranks, $NP or 2), mpi (the launcher), cfg, run and log for the job. Call from the repository root.
pipeline_setup() {
  t0=$(date +%s)
  jobs/install_deps.sh
  # shellcheck source=env.sh
  source jobs/env.sh
  jobs/build.sh
  mimic="$PWD/build/mimic"
  np=${NP:-2}
  mpi=(mpirun -n "$np")
  cfg=$1
  run=$2
  mkdir -p "$run"
  log="$run/$3"
  : >"$log"
}

timing=()
# step <name> <output> <command...>: runs one stage unless its output exists; logs and times it.
step() {
  local name=$1 out=$2
  shift 2
  if [ -e "$out" ]; then
    echo "== $name: $out exists, skipped" | tee -a "$log"
    timing+=("$(printf '%-36s %8s' "$name" skipped)")
    return
  fi
  local s
  s=$(date +%s)
  echo "== $name: $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  timing+=("$(printf '%-36s %6d s' "$name" $(($(date +%s) - s)))")
}

# ensemble_results <manifest> <test set>: evaluates the ensemble and sets ens (the report), teacher (its
# accuracy, mean of logits, in %), members (the members' mean accuracy) and teacher_params (their sum).
ensemble_results() {
  ens=$("${mpi[@]}" "$mimic" eval --ensemble "$1" --data "$2" 2>&1 | tee -a "$log")
  teacher=$(echo "$ens" | awk '/mean of logits:/{print $5}' | tr -d '%')
  members=$(echo "$ens" | awk '/members: mean/{print $3}' | tr -d ',%')
  teacher_params=$("$mimic" ensemble info "$1" | awk 'NR>1 && $1 ~ /^[0-9]+$/ {s += $4} END {print s}')
}
# accuracy <model> <data>: the model's accuracy in % on a labelled set (`mimic eval`); params <model>: its
# parameter count.
accuracy() { "${mpi[@]}" "$mimic" eval --model "$1" --data "$2" 2>&1 | tee -a "$log" | awk '/^  accuracy /{print $2}' | tr -d '%'; }
params() { "$mimic" info "$1" | awk -F'= ' '/@num_params/{print $2}'; }

# print_timings: the step-time table and the total since pipeline_setup.
print_timings() {
  printf '%-36s %8s\n' step time
  printf '%s\n' "${timing[@]}"
  echo "total: $(($(date +%s) - t0)) s (build included)"
}
