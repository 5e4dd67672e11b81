# Shared by the pipeline jobs (quickstart.sh, fashion_mnist_study.sh, fashion_mnist_figure.sh): set-up
# (install, environment, build), a step runner that skips finished stages, times them and shows where the
# pipeline is ("[3/7] label transfer set (elapsed 4m12s, estimated 6m left)"), and the helpers of the
# results table.

# pipeline_setup <config> <run dir> <log file name> <step plan...>: pipeline_start, then installs what is
# missing and builds (both logged), and sets mimic, np (ranks, $NP or 2) and mpi (the launcher). With
# MIMIC_BIN set (an executable built elsewhere, as the tests do) it skips the install and the build and runs
# that executable. Call from the repository root.
pipeline_setup() {
  pipeline_start "$@"
  if [ -n "${MIMIC_BIN:-}" ]; then
    [ -x "$MIMIC_BIN" ] || { echo "MIMIC_BIN=$MIMIC_BIN is not an executable" | tee -a "$log" >&2; exit 1; }
    echo "[setup] using MIMIC_BIN=$MIMIC_BIN (no install check, no build)" | tee -a "$log"
    # shellcheck source=env.sh
    source jobs/env.sh
    mimic=$MIMIC_BIN
  else
    echo "[setup] installing what is missing (jobs/install_deps.sh)" | tee -a "$log"
    jobs/install_deps.sh 2>&1 | tee -a "$log"
    # shellcheck source=env.sh
    source jobs/env.sh
    echo "[setup] building (jobs/build.sh)" | tee -a "$log"
    jobs/build.sh 2>&1 | tee -a "$log"
    mimic="$PWD/build/mimic"
  fi
  np=${NP:-2}
  mpi=(mpirun -n "$np")
}

# pipeline_start <config> <run dir> <log file name> <step plan...>: sets t0, cfg, run and log, appends a
# dated header to the log, and reads the plan: one "name=seconds" entry per step in the order the job runs
# them, with a typical time on 2 idle cores that the estimate of the time left uses until a run has
# recorded its own ($run/step_times.tsv, kept from one run to the next).
pipeline_start() {
  t0=$(date +%s)
  cfg=$1
  run=$2
  mkdir -p "$run"
  log="$run/$3"
  shift 3
  plan_names=()
  plan_secs=()
  local entry
  for entry in "$@"; do
    plan_names+=("${entry%=*}")
    plan_secs+=("${entry##*=}")
  done
  times_file="$run/step_times.tsv"
  declare -gA prev_secs=()
  if [ -f "$times_file" ]; then
    local name secs
    while IFS=$'\t' read -r name secs; do prev_secs[$name]=$secs; done <"$times_file"
  fi
  step_index=0
  timing=()
  {
    echo
    echo "======== $(date '+%Y-%m-%d %H:%M:%S %Z')  $0 $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || true) ========"
  } >>"$log"
}

# duration <seconds>: "45s", "4m12s", "1h03m".
duration() {
  local s=$1
  if [ "$s" -lt 60 ]; then
    printf '%ds' "$s"
  elif [ "$s" -lt 3600 ]; then
    printf '%dm%02ds' $((s / 60)) $((s % 60))
  else
    printf '%dh%02dm' $((s / 3600)) $((s % 3600 / 60))
  fi
}

# estimate_left <from index>: seconds the steps from that index on should take (the previous run's time
# of each step when recorded, else the plan's typical time).
estimate_left() {
  local i sum=0
  for ((i = $1; i < ${#plan_names[@]}; i++)); do
    sum=$((sum + ${prev_secs[${plan_names[$i]}]:-${plan_secs[$i]}}))
  done
  echo "$sum"
}

# step <name> <output> <command...>: runs one stage unless its output exists; logs, times and numbers it.
# A failing stage ends the job with its error as the last line.
step() {
  local name=$1 out=$2
  shift 2
  step_index=$((step_index + 1))
  local total=${#plan_names[@]} tag
  [ "$step_index" -le "$total" ] || total=$step_index
  tag="[$step_index/$total]"
  if [ -e "$out" ]; then
    step_index=$((step_index - 1))
    skip_step "$name" "$out exists"
    return
  fi
  local left
  left=$(estimate_left $((step_index - 1)))
  echo "$tag $name (elapsed $(duration $(($(date +%s) - t0))), estimated $(duration "$left") left)" | tee -a "$log"
  echo "  \$ $*" >>"$log"
  local s out_tmp rc
  s=$(date +%s)
  out_tmp=$(mktemp)
  set +e
  "$@" 2>&1 | tee -a "$log" "$out_tmp"
  rc=${PIPESTATUS[0]}
  set -e
  local secs=$(($(date +%s) - s))
  if [ "$rc" -ne 0 ]; then
    local err
    err=$(grep -E '^mimic .*error' "$out_tmp" | tail -1)
    rm -f "$out_tmp"
    echo "$tag $name failed after $(duration "$secs") (exit $rc; full log: $log)" | tee -a "$log" >&2
    [ -z "$err" ] || echo "$err" | tee -a "$log" >&2
    exit "$rc"
  fi
  rm -f "$out_tmp"
  timing+=("$(printf '%-36s %6d s' "$name" "$secs")")
  record_time "$name" "$secs"
}

# skip_step <name> <why>: counts a step of the plan that need not run ("[3/9] NAME: WHY, skipped").
skip_step() {
  step_index=$((step_index + 1))
  local total=${#plan_names[@]}
  [ "$step_index" -le "$total" ] || total=$step_index
  echo "[$step_index/$total] $1: $2, skipped" | tee -a "$log"
  timing+=("$(printf '%-36s %8s' "$1" skipped)")
}

# record_time <name> <seconds>: keeps this run's time of a step for the next run's estimates.
record_time() {
  prev_secs[$1]=$2
  local tmp="$times_file.tmp" k
  : >"$tmp"
  for k in "${!prev_secs[@]}"; do printf '%s\t%s\n' "$k" "${prev_secs[$k]}" >>"$tmp"; done
  mv "$tmp" "$times_file"
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

# compare <model A> <model B> <data>: the paired comparison of A over B (`mimic eval --compare`); sets
# margin, margin_lo, margin_hi (points) and verdict ("within noise", "A is better", "B is better").
compare() {
  local out
  out=$("${mpi[@]}" "$mimic" eval --model "$1" --compare "$2" --data "$3" 2>&1 | tee -a "$log")
  read -r margin margin_lo margin_hi < <(echo "$out" | awk '/margin A - B/{print $5, $9, $11}')
  verdict=$(echo "$out" | sed -n 's/^  verdict: \([^(]*\) (.*/\1/p' | sed 's/ *$//')
}

# print_timings: the step-time table and the total since pipeline_setup.
print_timings() {
  printf '%-36s %8s\n' step time
  printf '%s\n' "${timing[@]}"
  echo "total: $(duration $(($(date +%s) - t0))) (install check and build included)"
}
