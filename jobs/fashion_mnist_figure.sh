#!/usr/bin/env bash
# The accuracy-against-parameters figure on Fashion-MNIST (Ba & Caruana's central exhibit): students of
# several sizes trained on the labels and with the KD loss from the default ensemble's logits, over several
# seeds, one CSV row per finished run; then the PNGs and the markdown table (jobs/plot_figure.py), and the
# linear bottleneck's training-speed claim (time to a fixed validation accuracy, with and without it).
# Usage: jobs/fashion_mnist_figure.sh [all|sweep|bottleneck|plot]         (default: all = the three)
#   MIMIC_RUN_DIR  run directory [run/fashion-mnist-study: the study's teachers, transfer set and logits are
#                  reused, and built there when missing]; results in RUN_DIR/figure.csv, models and per-epoch
#                  logs in RUN_DIR/figure/, the log in RUN_DIR/figure.log
#   FIGURE_CONFIG  the sweep's points, seeds and epochs [inputs/fashion-mnist/figure.cfg; it gives the budget;
#                  inputs/fashion-mnist/figure_resnet.cfg: the residual teachers, its own run-dir and figure-dir]
#   FIGURE_OUT_DIR where the PNGs go [inputs/fashion-mnist/figures; the smoke mode: RUN_DIR/figures]
#   FIGURE_SMOKE=1 a one-minute check of the machinery: inputs/fashion-mnist/figure_smoke.cfg (a tiny ensemble,
#                  two tiny points, one seed, one epoch) in run/fashion-mnist-figure-smoke
#   NP (ranks, default 2), MIMIC_BIN (an executable built elsewhere: no install check, no build)
#   FIGURE_STOP_AFTER_STEPS=N  testing: every run stops after N steps as if killed (a rerun resumes it)
#   FIGURE_ROWS_FROM=DIR  go on with a sweep begun elsewhere: a run directory without figure.csv starts from
#                  DIR/figure.csv and DIR/figure/*.csv (e.g. inputs/fashion-mnist/figures/results, the committed
#                  rows); its teachers must score as the carried ensemble row says (checked), or within
#                  FIGURE_TEACHERS_TOLERANCE points of it (default 0)
# A rerun skips every run whose row is in figure.csv and resumes a killed run from its checkpoint (Mimic's
# own resume), so the sweep can span several sessions.
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=steps.sh
source jobs/steps.sh
# shellcheck source=fashion_mnist_inputs.sh
source jobs/fashion_mnist_inputs.sh

mode=${1:-all}
case $mode in
  all | sweep | bottleneck | plot) ;;
  *) echo "fashion_mnist_figure.sh: unknown mode '$mode' (all, sweep, bottleneck or plot)" >&2 && exit 2 ;;
esac
if [ "${FIGURE_SMOKE:-0}" = 1 ]; then
  conf=${FIGURE_CONFIG:-$root/inputs/fashion-mnist/figure_smoke.cfg}
  run_default=run/fashion-mnist-figure-smoke
  fig_default=
else
  conf=${FIGURE_CONFIG:-$root/inputs/fashion-mnist/figure.cfg}
  run_default=run/fashion-mnist-study
  fig_default=inputs/fashion-mnist/figures
fi

# The sweep's configuration (format in inputs/fashion-mnist/figure.cfg): one "point = NAME KIND EPOCHS
# DROPOUT LABELS_S KD_S ARCH" line per student, and single settings.
[ -f "$conf" ] || { echo "$conf: no such file (FIGURE_CONFIG)" >&2 && exit 2; }
declare -A set_ caps
points=()
while IFS= read -r line; do
  line=${line%%#*}
  [[ $line =~ ^[[:space:]]*([a-z-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]] || {
    [[ $line =~ ^[[:space:]]*$ ]] || { echo "$conf: cannot read the line '$line'" >&2 && exit 2; }
    continue
  }
  key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
  case $key in
    point)
      read -r -a f <<<"$value"
      [ "${#f[@]}" -eq 7 ] || { echo "$conf: point '$value' needs 7 fields: NAME KIND EPOCHS DROPOUT LABELS_S KD_S ARCH" >&2 && exit 2; }
      case ${f[1]} in shallow | conv-shallow | deep) ;; *) echo "$conf: point ${f[0]}: kind '${f[1]}' is not shallow, conv-shallow or deep" >&2 && exit 2 ;; esac
      points+=("$value")
      ;;
    cap)
      read -r -a f <<<"$value"
      caps[${f[0]}]=${f[1]}
      ;;
    seeds | kd-loss | curve-pair | teacher-args | transfer-args | teachers-config | run-dir | figure-dir | \
      bottleneck-wide | bottleneck-factored | bottleneck-epochs | bottleneck-shards | bottleneck-seconds | bottleneck-target | bottleneck-seeds) set_[$key]=$value ;;
    *) echo "$conf: unknown key '$key'" >&2 && exit 2 ;;
  esac
done <"$conf"
for key in seeds kd-loss curve-pair bottleneck-wide bottleneck-factored bottleneck-epochs bottleneck-shards \
  bottleneck-seconds bottleneck-target bottleneck-seeds; do
  [ -n "${set_[$key]:-}" ] || { echo "$conf: '$key' is not set" >&2 && exit 2; }
done
[ "${#points[@]}" -gt 0 ] || { echo "$conf: no 'point' lines" >&2 && exit 2; }
read -r -a seeds <<<"${set_[seeds]}"
# Where the run and the PNGs go: the environment wins, then the configuration's run-dir and figure-dir (paths
# from the repository root), then the defaults (a sweep with other teachers keeps its own run directory).
run_dir=${MIMIC_RUN_DIR:-$root/${set_[run-dir]:-$run_default}}
fig_dir=${FIGURE_OUT_DIR:-${set_[figure-dir]:+$root/${set_[figure-dir]}}}
[ -n "$fig_dir" ] || fig_dir=${fig_default:+$root/$fig_default}
fig_dir=${fig_dir:-$run_dir/figures}
teachers_cfg=${set_[teachers-config]:-inputs/fashion-mnist/teachers.cfg}
[ -f "$teachers_cfg" ] || { echo "$conf: teachers-config $teachers_cfg: no such file" >&2 && exit 2; }
read -r -a teacher_args <<<"${set_[teacher-args]:-}"
read -r -a transfer_args <<<"${set_[transfer-args]:-}"
read -r -a bottleneck_shards <<<"${set_[bottleneck-shards]}"
read -r -a bottleneck_seeds <<<"${set_[bottleneck-seeds]}"
for seed in "${seeds[@]}" "${bottleneck_seeds[@]}"; do
  [[ $seed =~ ^[1-9][0-9]{0,8}$ ]] || { echo "$conf: seed '$seed' is not a positive integer (seeds, bottleneck-seeds)" >&2 && exit 2; }
done
kd_loss=${set_[kd-loss]}
[[ ${FIGURE_TEACHERS_TOLERANCE:-0} =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "FIGURE_TEACHERS_TOLERANCE: '$FIGURE_TEACHERS_TOLERANCE' is not a number of points" >&2 && exit 2; }

# The plan: the shared inputs, then every run in the order the sweep takes them (seed by seed, so that an
# interrupted sweep has every point at its first seeds), each estimated as epochs x seconds per epoch plus
# 15 s of start-up and evaluation.
plan=("${fashion_mnist_input_plan[@]}")
if [ "$mode" = all ] || [ "$mode" = sweep ]; then
  for seed in "${seeds[@]}"; do
    for p in "${points[@]}"; do
      read -r name _ n _ ls ks _ <<<"$p"
      plan+=("$name labels s$seed=$(awk -v n="$n" -v s="$ls" 'BEGIN{printf "%d", n * s + 15}')")
      plan+=("$name kd s$seed=$(awk -v n="$n" -v s="$ks" 'BEGIN{printf "%d", n * s + 15}')")
    done
  done
fi
if [ "$mode" = all ] || [ "$mode" = bottleneck ]; then
  # bottleneck-seconds: per model-shard count, the seconds per epoch of the wide and of the factored net
  read -r -a bsecs <<<"${set_[bottleneck-seconds]}"
  [ "${#bsecs[@]}" -eq $((2 * ${#bottleneck_shards[@]})) ] ||
    { echo "$conf: bottleneck-seconds needs 2 numbers (wide, factored) per bottleneck-shards entry" >&2 && exit 2; }
  for seed in "${bottleneck_seeds[@]}"; do
    for i in "${!bottleneck_shards[@]}"; do
      for j in 0 1; do
        which=wide
        [ "$j" = 0 ] || which=factored
        plan+=("bottleneck $which M=${bottleneck_shards[$i]} s$seed=$(awk -v n="${set_[bottleneck-epochs]}" \
          -v s="${bsecs[$((2 * i + j))]}" 'BEGIN{printf "%d", n * s + 15}')")
      done
    done
  done
fi
if [ "$mode" = plot ]; then
  pipeline_start "$conf" "$run_dir" figure.log # the plot needs neither the build nor the ranks
else
  pipeline_setup "$conf" "$run_dir" figure.log "${plan[@]}"
fi
stop_args=()
[ -z "${FIGURE_STOP_AFTER_STEPS:-}" ] || stop_args=(--stop-after-steps "$FIGURE_STOP_AFTER_STEPS")
csv=$run/figure.csv
out_dir=$run/figure
mkdir -p "$out_dir"
header=point,loss,seed,kind,epochs,params,val_acc,test_acc,wall_s,cpu_s,resumed,log,arch
# FIGURE_ROWS_FROM: a sweep begun elsewhere (e.g. the committed inputs/fashion-mnist/figures/results) goes on
# here: a run directory without figure.csv starts from that folder's rows and per-epoch logs, which the rerun
# then skips; ensemble_rows checks that this run directory's teachers score as the carried ones did.
# Until the check passes, a marker says the rows are unchecked, so that a run stopped in between checks them
# on its rerun.
carried=0
unchecked=$run/.figure_rows_unchecked
[ ! -e "$unchecked" ] || carried=1
if [ ! -s "$csv" ] && [ -n "${FIGURE_ROWS_FROM:-}" ] && [ "$mode" != plot ]; then
  [ -s "$FIGURE_ROWS_FROM/figure.csv" ] || { echo "FIGURE_ROWS_FROM: $FIGURE_ROWS_FROM/figure.csv: no such file" >&2 && exit 2; }
  [ "$(head -1 "$FIGURE_ROWS_FROM/figure.csv")" = "$header" ] ||
    { echo "$FIGURE_ROWS_FROM/figure.csv: the header is not '$header'" >&2 && exit 2; }
  [ ! -d "$FIGURE_ROWS_FROM/figure" ] || cp -n "$FIGURE_ROWS_FROM"/figure/*.csv "$out_dir"/ 2>/dev/null || true
  touch "$unchecked"
  cp "$FIGURE_ROWS_FROM/figure.csv" "$csv.part" && mv "$csv.part" "$csv"
  carried=1
  echo "[rows] $(($(wc -l <"$csv") - 1)) rows carried from $FIGURE_ROWS_FROM/figure.csv (a rerun skips them)" | tee -a "$log"
fi
[ -s "$csv" ] || echo "$header" >"$csv"
[ "$(head -1 "$csv")" = "$header" ] || { echo "$csv: the header is not '$header'" >&2 && exit 1; }

# children_cpu: sets cpu_now to the CPU seconds (user + system) of this shell's finished children so far
# (every rank of an mpirun counts); `times` must run in this shell, not in a command substitution.
children_cpu() {
  times >"$run/.figure_times"
  cpu_now=$(awk 'function s(x, a) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
                 NR == 2 { printf "%.1f", s($1) + s($2) }' "$run/.figure_times")
}
# has_row <point> <loss> <seed>: whether figure.csv has the row.
has_row() { awk -F, -v p="$1" -v l="$2" -v s="$3" '$1 == p && $2 == l && $3 == s {f = 1} END {exit !f}' "$csv"; }
# last_val_acc <log csv>: the final epoch's validation accuracy in %.
last_val_acc() {
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next} {v = $c["val_acc"]} END {printf "%.2f", 100 * v}' "$1"
}
# param_count <model file>: its parameters (`mimic info`).
param_count() { "$mimic" info "$1" | awk -F'= ' '/@num_params/{print $2}'; }

# timed_step <name> <model file> <command...>: a step of jobs/steps.sh that also keeps the wall and CPU
# seconds of this invocation in MODEL.time ("wall cpu resumed"; resumed: a checkpoint was there before, and
# the times are those of the resumed part). A run stopped before its end (no model) ends the script.
timed_step() {
  local name=$1 out=$2 existed=0 resumed=0 w0 c0
  shift 2
  [ ! -e "$out" ] || existed=1
  [ ! -e "$out.ckpt" ] || resumed=1
  children_cpu
  c0=$cpu_now
  w0=$(date +%s.%N)
  step "$name" "$out" "$@" ${stop_args[@]+"${stop_args[@]}"}
  [ "$existed" = 0 ] || return 0
  if [ ! -e "$out" ]; then # --stop-after-steps: Mimic kept the checkpoint and wrote no model
    echo "$name: stopped before its end; the checkpoint $out.ckpt is kept, rerun to resume" | tee -a "$log" >&2
    exit 3
  fi
  children_cpu
  awk -v w0="$w0" -v w1="$(date +%s.%N)" -v c0="$c0" -v c1="$cpu_now" -v r="$resumed" \
    'BEGIN {printf "%.1f %.1f %d\n", w1 - w0, c1 - c0, r}' >"$out.time"
}

# add_row <point> <loss> <seed> <kind> <epochs> <model file> <arch>: evaluates a finished run and appends
# its row to figure.csv: val accuracy from the last epoch of its log, test accuracy from `mimic eval`.
add_row() {
  local point=$1 loss=$2 seed=$3 kind=$4 n=$5 model=$6 arch=$7 params val test wall='' cpu='' resumed=''
  [ ! -f "$model.time" ] || read -r wall cpu resumed <"$model.time"
  params=$(param_count "$model")
  val=$(last_val_acc "${model%.h5}.csv")
  test=$(accuracy "$model" "$d/test.h5")
  [ -n "$params" ] && [ -n "$test" ] || { echo "$model: no parameter count or test accuracy (log: $log)" >&2 && exit 1; }
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"%s"\n' "$point" "$loss" "$seed" "$kind" "$n" "$params" "$val" \
    "$test" "$wall" "$cpu" "$resumed" "figure/$(basename "${model%.h5}.csv")" "$arch" >>"$csv"
  echo "  row: $point $loss seed $seed: $params parameters, val $val%, test $test%, ${wall:-?} s wall, ${cpu:-?} s CPU" | tee -a "$log"
  if [ -n "${caps[$point]:-}" ] &&
    ! awk -v p="$params" -v c="${caps[$point]}" -v e="$ens_params" 'BEGIN {exit !(p <= c * e)}'; then
    echo "$conf: point $point has $params parameters, more than ${caps[$point]} of the ensemble's $ens_params (cap)" | tee -a "$log" >&2
    exit 1
  fi
}

# ensemble_rows: the teachers' rows (mean of logits; the best member by test accuracy), once.
ensemble_rows() {
  ens_params=$("$mimic" info "$run/teachers/manifest.h5" | awk '{for (i = 1; i < NF; i++) if ($i == "params") s += $(i + 1)} END {print s}')
  if has_row ensemble teachers -; then
    [ "$carried" = 1 ] || return 0
    # carried rows: these teachers must be the ones they were measured against
    local mine theirs tol=${FIGURE_TEACHERS_TOLERANCE:-0}
    mine=$("${mpi[@]}" "$mimic" eval --ensemble "$run/teachers/manifest.h5" --data "$d/test.h5" 2>&1 | tee -a "$log" |
      awk '/mean of logits:/{print $5}' | tr -d '%')
    theirs=$(awk -F, '$1 == "ensemble" && $2 == "teachers" {print $8}' "$csv")
    awk -v a="$mine" -v b="$theirs" -v t="$tol" 'BEGIN {exit !(a != "" && a - b <= t + 1e-9 && b - a <= t + 1e-9)}' || {
      rm -f "$csv" "$unchecked" # not carried: a rerun carries the rows again and checks again
      echo "$csv: the carried rows were measured against an ensemble at $theirs% test accuracy, the teachers in" \
        "$run/teachers score ${mine:-?}%: not the same teachers (remove the teachers and rerun; teachers built on" \
        "another CPU can differ in float rounding: pin OpenBLAS's kernels with OPENBLAS_CORETYPE, README" \
        "'Conventions and guarantees'; FIGURE_TEACHERS_TOLERANCE=POINTS accepts a difference up to POINTS)" |
        tee -a "$log" >&2
      exit 1
    }
    rm -f "$unchecked"
    if [ "$mine" = "$theirs" ]; then
      echo "[rows] the teachers in $run/teachers score $mine% on the test rows, as the carried rows' did" | tee -a "$log"
    else
      echo "[rows] the teachers in $run/teachers score $mine% on the test rows, the carried rows' $theirs%: within" \
        "FIGURE_TEACHERS_TOLERANCE=$tol points, going on (the table keeps the carried ensemble row)" | tee -a "$log"
    fi
    return 0
  fi
  rm -f "$unchecked" # no carried rows to check: the rows below are this run directory's own
  local val_report test_report
  test_report=$("${mpi[@]}" "$mimic" eval --ensemble "$run/teachers/manifest.h5" --data "$d/test.h5" 2>&1 | tee -a "$log")
  val_report=$("${mpi[@]}" "$mimic" eval --ensemble "$run/teachers/manifest.h5" --data "$d/val.h5" 2>&1 | tee -a "$log")
  # member_accs <report>: the members' accuracies, one a line; mean_of_logits <report>
  member_accs() { echo "$1" | sed -n '/per member:/,$p' | tr ' ' '\n' | sed -n 's/^\([0-9.]*\)%$/\1/p'; }
  mean_of_logits() { echo "$1" | awk '/mean of logits:/{print $5}' | tr -d '%'; }
  local best i tests vals member_params
  mapfile -t tests < <(member_accs "$test_report")
  mapfile -t vals < <(member_accs "$val_report")
  [ "${#tests[@]}" -gt 0 ] && [ "${#tests[@]}" -eq "${#vals[@]}" ] || { echo "mimic eval --ensemble: no per-member accuracies (log: $log)" >&2 && exit 1; }
  best=0
  for i in "${!tests[@]}"; do
    awk -v a="${tests[$i]}" -v b="${tests[$best]}" 'BEGIN {exit !(a > b)}' && best=$i
  done
  member_params=$("$mimic" info "$run/teachers/manifest.h5" | awk -v k="$best" '$1 == k {for (i = 1; i < NF; i++) if ($i == "params") print $(i + 1)}')
  echo "ensemble,teachers,-,teachers,-,$ens_params,$(mean_of_logits "$val_report"),$(mean_of_logits "$test_report"),,,,,\"mean of logits\"" >>"$csv"
  echo "ensemble,best-member,-,teachers,-,$member_params,${vals[$best]},${tests[$best]},,,,,\"member $best\"" >>"$csv"
}

# sweep: every point on labels (dropout before the output layer) and with the KD loss, seed by seed.
sweep() {
  local seed p name kind n drop arch labels_arch out shards
  for seed in "${seeds[@]}"; do
    for p in "${points[@]}"; do
      read -r name kind n drop _ _ arch <<<"$p"
      labels_arch=$arch
      [ "$drop" = 0 ] || labels_arch="${arch%,*},dropout:$drop,${arch##*,}"
      out=$out_dir/${name}_labels_s$seed.h5
      if has_row "$name" labels "$seed"; then
        skip_step "$name labels s$seed" "its row is in figure.csv"
      else
        timed_step "$name labels s$seed" "$out" "${mpi[@]}" "$mimic" train --config "$study_cfg" \
          --arch "$labels_arch" --epochs "$n" --seed "$seed" --data "$d/train.h5" --val "$d/val.h5" \
          --out "$out" --log-csv "${out%.h5}.csv"
        add_row "$name" labels "$seed" "$kind" "$n" "$out" "$labels_arch"
      fi
      # The fully connected students split their wide layer over the ranks (as in the study).
      shards=1
      [ "$kind" != shallow ] || shards=$np
      out=$out_dir/${name}_kd_s$seed.h5
      if has_row "$name" "$kd_loss" "$seed"; then
        skip_step "$name kd s$seed" "its row is in figure.csv"
        continue
      fi
      timed_step "$name kd s$seed" "$out" "${mpi[@]}" "$mimic" distill --config "$study_cfg" \
        --arch "$arch" --loss "$kd_loss" --epochs "$n" --seed "$seed" --model-shards "$shards" \
        --transfer "$run/transfer.h5" --logits "$run/logits_transfer.h5" --val "$d/val.h5" \
        --val-logits "$run/logits_val.h5" --out "$out" --log-csv "${out%.h5}.csv"
      add_row "$name" "$kd_loss" "$seed" "$kind" "$n" "$out" "$arch"
    done
  done
}

# plot: the PNGs and the markdown table (also kept in RUN_DIR/figure_table.md).
plot() {
  echo "[plot] $csv -> $fig_dir" | tee -a "$log"
  read -r cp cs <<<"${set_[curve-pair]}"
  /usr/bin/python3 jobs/plot_figure.py "$csv" --out-dir "$fig_dir" --pair "$cp:$cs" --kd-loss "$kd_loss" |
    tee "$run/figure_table.md" | tee -a "$log"
}

# bottleneck: Ba & Caruana's linear bottleneck sped up the training of wide students. The wide net and its
# factored twin learn from the same logits (the 55k training rows', so that an epoch is short and the time
# to a validation accuracy is read at a fine grain), with the same seed, optimizer and schedule, once per
# seed of bottleneck-seeds and model-shard count of bottleneck-shards (M = 1: data parallel; M = ranks: the
# wide layer split over the ranks, the bottleneck replicated). The time to a target is the sum of the
# per-epoch training seconds of the log CSV up to the first epoch at or above it (validation excluded); its
# CPU time, that share of the run's CPU seconds. The report gives the ratio per seed, and over the seeds the
# ratio of the summed times with the smallest and largest per-seed ratio.
bottleneck() {
  local which m out seed n=${set_[bottleneck-epochs]} target=${set_[bottleneck-target]}
  for seed in "${bottleneck_seeds[@]}"; do
    for m in "${bottleneck_shards[@]}"; do
      for which in wide factored; do
        out=$out_dir/bottleneck_${which}_m${m}_s$seed.h5
        timed_step "bottleneck $which M=$m s$seed" "$out" "${mpi[@]}" "$mimic" distill --config "$study_cfg" \
          --arch "${set_[bottleneck-$which]}" --loss "$kd_loss" --epochs "$n" --seed "$seed" --model-shards "$m" \
          --transfer "$d/train.h5" --logits "$run/logits_train.h5" --val "$d/val.h5" \
          --val-logits "$run/logits_val.h5" --out "$out" --log-csv "${out%.h5}.csv"
      done
    done
  done
  local report
  report=$(bottleneck_table)
  {
    echo "Linear bottleneck: time to reach a validation accuracy (KD $kd_loss on the training rows' logits, seeds"
    echo "${bottleneck_seeds[*]}, $n epochs each, $np ranks, M model shards; training seconds of the per-epoch logs, validation excluded)"
    echo "$report"
    for m in "${bottleneck_shards[@]}"; do
      echo "$report" | awk -v t="$(printf '%.2f%%' "$target")" -v m="$m" -v nseeds="${#bottleneck_seeds[@]}" '
        $3 == m && $5 == t {k = $2; seen[k] = 1; if ($1 == "wide") {w[k] = $7; wc[k] = $8} else {f[k] = $7; fc[k] = $8}}
        END {
          for (k in seen) order[++n] = k
          for (i = 2; i <= n; i++) for (j = i; j > 1 && order[j] + 0 < order[j - 1] + 0; j--) {x = order[j]; order[j] = order[j - 1]; order[j - 1] = x}
          for (i = 1; i <= n; i++) {
            k = order[i]
            printf "time to %s validation accuracy, M = %s, seed %s: ", t, m, k
            if (w[k] + 0 > 0 && f[k] + 0 > 0) {
              r = w[k] / f[k]; sw += w[k]; sf += f[k]; ok++
              if (ok == 1 || r < lo) lo = r
              if (ok == 1 || r > hi) hi = r
              printf "%.2fx faster with the bottleneck (wall: wide %s s, factored %s s; CPU: %s s, %s s)\n", r, w[k], f[k], wc[k], fc[k]
            } else print "not measured: a student did not reach it"
          }
          printf "time to %s validation accuracy, M = %s, over %d seeds: ", t, m, nseeds
          if (ok == nseeds) printf "%.2fx faster with the bottleneck (summed wall: wide %.1f s, factored %.1f s; per seed %.2fx to %.2fx)\n", sw / sf, sw, sf, lo, hi
          else printf "not measured: %d of %d seeds reached it on both sides\n", ok, nseeds
        }'
    done
  } | tee "$run/bottleneck.txt" | tee -a "$log"
}

# bottleneck_table: per seed, model-shard count and target (the target and 1 and 0.5 points below and 0.5
# above it), the epoch at which each student first reached it and its training and CPU seconds to then.
bottleneck_table() {
  local seed m t which out target=${set_[bottleneck-target]}
  printf '%-9s %4s %2s %-40s %8s %6s %8s %8s\n' student seed M arch target epoch "wall s" "CPU s"
  for seed in "${bottleneck_seeds[@]}"; do
    for m in "${bottleneck_shards[@]}"; do
      for t in $(awk -v t="$target" 'BEGIN {print t - 1, t - 0.5, t, t + 0.5}'); do
        for which in wide factored; do
          out=$out_dir/bottleneck_${which}_m${m}_s$seed
          awk -F, -v t="$t" -v who="$which" -v seed="$seed" -v m="$m" -v arch="${set_[bottleneck-$which]}" \
            -v time="$(cat "$out.h5.time" 2>/dev/null || echo '- -')" \
            'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next}
             {s += $c["seconds"]; if (!hit && 100 * $c["val_acc"] >= t) {hit = $c["epoch"]; at = s}}
             END {split(time, w, " "); cpu = (hit && w[2] != "-") ? sprintf("%.1f", w[2] * at / s) : "-"
                  printf "%-9s %4s %2s %-40s %7.2f%% %6s %8s %8s\n", who, seed, m, arch, t, hit ? hit : "never",
                         hit ? sprintf("%.1f", at) : "-", cpu}' "$out.csv"
        done
      done
    done
  done
}

study_cfg=inputs/fashion-mnist/study.cfg
if [ "$mode" != plot ]; then
  fashion_mnist_inputs
  if [ "$mode" != bottleneck ]; then
    ensemble_rows
    sweep
  fi
fi
[ "$mode" = bottleneck ] || plot
[ "$mode" != all ] && [ "$mode" != bottleneck ] || bottleneck
echo "[done] $mode (elapsed $(duration $(($(date +%s) - t0))); results: $csv; log: $log)" | tee -a "$log"
