#!/usr/bin/env bash
# The pipeline step runner of jobs/steps.sh (quickstart, study): numbered steps with the elapsed time and
# an estimate of the time left (from the plan, then from the previous run's step times), skipped steps,
# a log that accumulates under dated headers, and a failing step whose Mimic error is the last line.
source "$(dirname "$0")/common.sh"
d=$(scratch steps)
r=$d/run

# run_pipeline <first step's command>: one run of a three-step pipeline in a fresh shell.
run_pipeline() {
  bash -c '
    set -euo pipefail
    source "$1/../jobs/steps.sh"
    r=$2
    pipeline_start none "$r" test.log "one=50" "two=70" "three=3600"
    step one "$r/one.txt" bash -c "sleep 1; echo made one > $r/one.txt"
    step two "$r/two.txt" bash -c "echo made two > $r/two.txt"
    step three "$r/three.h5" "$MIMIC" train --data "$r/none.h5" --arch dense:10 --out "$r/three.h5"
  ' run "$TESTS_DIR" "$r"
}

run_pipeline >"$d/out1" 2>"$d/err1" && die "the failing third step should end the job"
grep -q "^\[1/3\] one (elapsed [0-9]*s, estimated 1h02m left)\$" "$d/out1" || { cat "$d/out1"; die "step 1 line"; }
grep -q "^\[2/3\] two (elapsed [0-9]*s, estimated 1h01m left)\$" "$d/out1" || { cat "$d/out1"; die "step 2 line"; }
grep -q "^\[3/3\] three (elapsed [0-9]*s, estimated 1h00m left)\$" "$d/out1" || { cat "$d/out1"; die "step 3 line"; }
[ "$(tail -1 "$d/err1")" = "mimic train: error: $r/none.h5: no such file" ] ||
  { cat "$d/err1"; die "the Mimic error is not the last line"; }
grep -q "^\[3/3\] three failed after [0-9]*s (exit 1; full log: $r/test.log)" "$d/err1" || { cat "$d/err1"; die "no failure line"; }
grep -q "^one	[0-9]*\$" "$r/step_times.tsv" || die "step one's time not recorded: $(cat "$r/step_times.tsv")"

# Second run: finished steps are skipped, the estimate uses the recorded times (one ~1 s, two ~0 s, not
# 50 and 70),
# and the log keeps the first run under its own header.
rm -f "$r/one.txt"
run_pipeline >"$d/out2" 2>"$d/err2" && die "the failing third step should end the job again"
grep -q "^\[1/3\] one (elapsed [0-9]*s, estimated 1h00m left)\$" "$d/out2" || { cat "$d/out2"; die "step 1 estimate"; }
grep -q "^\[2/3\] two: $r/two.txt exists, skipped" "$d/out2" || { cat "$d/out2"; die "step 2 not skipped"; }
one=$(awk -F'\t' '$1 == "one" {print $2}' "$r/step_times.tsv")
[ "$one" -le 5 ] || die "step one recorded as $one s"
[ "$(grep -c '^======== ' "$r/test.log")" -eq 2 ] || die "expected two dated headers in the log"
grep -q '^\[1/3\] one (elapsed [0-9]*s, estimated 1h02m left)$' "$r/test.log" || die "the first run's step 1 line is gone from the log"
grep -q "^\[2/3\] two: .* skipped" "$r/test.log" || die "the second run is not in the log"
echo "steps: passed"
