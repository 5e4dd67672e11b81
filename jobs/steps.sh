# Shared by the pipeline jobs (quickstart.sh, fashion_mnist_study.sh): run a stage unless its output
# exists, log it and time it. Set `log` (the log file) before use; times collect in the `timing` array.
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
