#!/usr/bin/env bash
# The figure sweep's machinery (jobs/fashion_mnist_figure.sh with FIGURE_SMOKE=1, jobs/plot_figure.py) on a
# tiny ensemble: a run stopped mid-way is resumed by the rerun from Mimic's checkpoint, one CSV row per run
# with sane values, the three PNGs, the table and the bottleneck report; a rerun trains nothing and adds no
# row, and a row lost after its run finished is added back from the kept model without training; the cap on
# a point's parameters and a bad seed; the table's mean, standard deviation, gap closed and verdict on a
# hand-made CSV of 3 and 2 seeds, and its figures named relative to the repository; and a sweep carried
# into a new run directory (FIGURE_ROWS_FROM).
source "$(dirname "$0")/common.sh"
d=$(scratch figure)
root=$(cd "$TESTS_DIR/.." && pwd)
csv=$d/run/figure.csv
fig() { MIMIC_BIN=$MIMIC MIMIC_RUN_DIR=${RUN:-$d/run} FIGURE_SMOKE=1 NP=2 "$root/jobs/fashion_mnist_figure.sh" "$@"; }
students() { grep -c -E '^(fc32|mlp16),' "$csv"; }

# 1. Every run stops after 3 steps as if killed: the sweep ends at its first run and keeps its checkpoint.
FIGURE_STOP_AFTER_STEPS=3 fig sweep >"$d/out1" 2>&1 && { tail -20 "$d/out1"; die "a stopped run should end the sweep"; }
grep -q "fc32 labels s1: stopped before its end; the checkpoint .* is kept, rerun to resume" "$d/out1" ||
  { tail -20 "$d/out1"; die "no message about the stopped run"; }
[ -f "$d/run/figure/fc32_labels_s1.h5.ckpt" ] || die "no checkpoint of the stopped run"
[ "$(grep -c '^ensemble,' "$csv")" -eq 2 ] || { cat "$csv"; die "expected the 2 ensemble rows"; }
[ "$(students)" -eq 0 ] || { cat "$csv"; die "a stopped run has a row"; }

# 2. The full smoke run: the stopped run resumes, 4 student rows, the plots, the table, the bottleneck report.
fig all >"$d/out2" 2>&1 || { tail -30 "$d/out2"; die "the smoke run failed"; }
grep -q "train: resuming from .*fc32_labels_s1.h5.ckpt" "$d/out2" || { head -60 "$d/out2"; die "the stopped run was not resumed"; }
[ "$(students)" -eq 4 ] || { cat "$csv"; die "expected 4 student rows"; }
for key in "fc32,labels,1,shallow,1" "fc32,kd:4,1,shallow,1" "mlp16,labels,1,deep,1" "mlp16,kd:4,1,deep,1"; do
  grep -q "^$key," "$csv" || { cat "$csv"; die "no row $key"; }
done
grep -q '^fc32,labels,1,.*,1,figure/fc32_labels_s1.csv,"dense:32,relu,dropout:0.3,dense:10"$' "$csv" ||
  { cat "$csv"; die "the resumed run's row is not marked resumed or lacks the labels net's dropout"; }
# Every student row: params as `mimic info` gives them, accuracies in (10, 100], wall and CPU seconds > 0.
awk -F, 'NR > 1 && $1 != "ensemble" {
  if ($6 + 0 <= 0 || $7 <= 10 || $7 > 100 || $8 <= 10 || $8 > 100 || $9 <= 0 || $10 <= 0) {print "bad row: " $0; bad = 1}
} END {exit bad}' "$csv" || die "a row with impossible values"
params=$("$MIMIC" info "$d/run/figure/mlp16_kd_s1.h5" | awk -F'= ' '/@num_params/{print $2}')
grep -q "^mlp16,kd:4,1,deep,1,$params," "$csv" || die "mlp16's parameters are not $params"
ens=$(grep '^ensemble,teachers,' "$csv" | cut -d, -f6)
[ "$ens" -eq 50900 ] || die "the ensemble of 2 members 784-32-10 has 50900 parameters, not $ens"
for png in figure_accuracy figure_gap figure_curves; do
  f=$d/run/figures/$png.png
  [ "$(head -c 4 "$f" 2>/dev/null | tail -c 3)" = PNG ] || die "$f is not a PNG"
done
grep -q '^| fc32 | shallow | 25,450 (50.0%) | 1 | ' "$d/run/figure_table.md" || { cat "$d/run/figure_table.md"; die "no table row for fc32"; }
grep -q 'n/a (needs 2+ seeds)' "$d/run/figure_table.md" || die "one seed must not decide whether KD beats labels"
for m in 1 2; do
  for seed in 5 6; do
    grep -q "^time to 50.00% validation accuracy, M = $m, seed $seed: [0-9.]*x faster with the bottleneck" "$d/run/bottleneck.txt" ||
      { cat "$d/run/bottleneck.txt"; die "no bottleneck ratio for M = $m, seed $seed"; }
  done
  grep -q "^time to 50.00% validation accuracy, M = $m, over 2 seeds: [0-9.]*x faster with the bottleneck (summed wall: .*; per seed [0-9.]*x to [0-9.]*x)" \
    "$d/run/bottleneck.txt" || { cat "$d/run/bottleneck.txt"; die "no bottleneck ratio over the seeds for M = $m"; }
done
[ "$(grep -c -E '^(wide|factored) +[56] +[12] ' "$d/run/bottleneck.txt")" -eq 32 ] ||
  { cat "$d/run/bottleneck.txt"; die "expected 32 table lines: 2 students x 2 seeds x 2 M x 4 targets"; }

# 3. A rerun trains nothing and adds no row.
cp "$csv" "$d/csv2"
fig all >"$d/out3" 2>&1 || { tail -30 "$d/out3"; die "the rerun failed"; }
cmp -s "$csv" "$d/csv2" || die "the rerun changed figure.csv"
[ "$(grep -c 'exists, skipped' "$d/out3")" -eq 14 ] || { cat "$d/out3"; die "expected 14 steps skipped on their outputs (6 inputs, 8 bottleneck)"; }
[ "$(grep -c 'its row is in figure.csv, skipped' "$d/out3")" -eq 4 ] || { cat "$d/out3"; die "expected 4 runs skipped on their rows"; }
! grep -q 'epoch 1/' "$d/out3" || die "the rerun trained"

# 4. A row lost after its run finished comes back from the kept model and times, without training.
grep -v '^mlp16,labels,' "$d/csv2" >"$csv"
fig sweep >"$d/out4" 2>&1 || { tail -30 "$d/out4"; die "the sweep after a lost row failed"; }
! grep -q 'epoch 1/' "$d/out4" || die "the lost row's run was trained again"
[ "$(sort "$csv" | md5sum)" = "$(sort "$d/csv2" | md5sum)" ] || { diff "$csv" "$d/csv2"; die "the lost row came back different"; }
# 5. A point over its cap (share of the ensemble's parameters) ends the sweep when its row is added.
sed 's/^cap = mlp16 0.5$/cap = mlp16 0.1/' "$root/inputs/fashion-mnist/figure_smoke.cfg" >"$d/capped.cfg"
grep -v '^mlp16,labels,' "$d/csv2" >"$csv"
FIGURE_CONFIG=$d/capped.cfg fig sweep >"$d/out5" 2>&1 && die "a point over its cap should end the sweep"
grep -q "capped.cfg: point mlp16 has 13002 parameters, more than 0.1 of the ensemble's 50900 (cap)" "$d/out5" ||
  { tail -5 "$d/out5"; die "no cap message"; }

# A seed that is not a positive integer is refused before anything runs.
sed 's/^bottleneck-seeds = .*/bottleneck-seeds = 5 x6/' "$root/inputs/fashion-mnist/figure_smoke.cfg" >"$d/badseed.cfg"
FIGURE_CONFIG=$d/badseed.cfg fig bottleneck >"$d/out5b" 2>&1 && die "a bad seed should be refused"
grep -q "badseed.cfg: seed 'x6' is not a positive integer (seeds, bottleneck-seeds)" "$d/out5b" || { cat "$d/out5b"; die "no bad-seed message"; }

# 6. The table's statistics over 3 seeds: a, KD ahead by more than the two standard deviations; b, within them.
cat >"$d/stats.csv" <<'CSV'
point,loss,seed,kind,epochs,params,val_acc,test_acc,wall_s,cpu_s,resumed,log,arch
ensemble,teachers,-,teachers,-,1000,92,92.0,,,,,"mean of logits"
ensemble,best-member,-,teachers,-,500,91,91.5,,,,,"member 0"
a,labels,1,shallow,5,100,90,90.0,1,1,0,a.csv,"x"
a,labels,2,shallow,5,100,90,90.2,1,1,0,a.csv,"x"
a,labels,3,shallow,5,100,90,90.1,1,1,0,a.csv,"x"
a,kd:4,1,shallow,5,100,91,91.0,1,1,0,a.csv,"x"
a,kd:4,2,shallow,5,100,91,91.1,1,1,0,a.csv,"x"
a,kd:4,3,shallow,5,100,91,90.9,1,1,0,a.csv,"x"
b,labels,1,deep,5,200,90,90.0,1,1,0,b.csv,"y"
b,labels,2,deep,5,200,90,90.8,1,1,0,b.csv,"y"
b,kd:4,1,deep,5,200,91,90.5,1,1,0,b.csv,"y"
b,kd:4,2,deep,5,200,91,91.1,1,1,0,b.csv,"y"
CSV
"$MIMIC_PYTHON" "$root/jobs/plot_figure.py" "$d/stats.csv" --out-dir "$d/stats" >"$d/stats.md" || die "plot_figure.py failed on 3 seeds"
grep -qF '| a | shallow | 100 (10.0%) | 5 | 90.10 ± 0.10% | 91.00 ± 0.10% | 90.00 ± 0.00% | 91.00 ± 0.00% | 3 / 3 | 47 ± 5% | **yes** (+0.90 > 0.20) |' "$d/stats.md" ||
  { cat "$d/stats.md"; die "point a: wrong statistics"; }
grep -qF '| b | deep | 200 (20.0%) | 5 | 90.40 ± 0.57% | 90.80 ± 0.42% | 90.00 ± 0.00% | 91.00 ± 0.00% | 2 / 2 | 25 ± 0% | no: within the spread (+0.40 ≤ 0.99) |' "$d/stats.md" ||
  { cat "$d/stats.md"; die "point b: wrong statistics"; }
# The table names its figures relative to the repository when they lie in it (tables are committed).
want=$d/stats/figure_accuracy.png
[[ $want == "$root"/* ]] && want=${want#"$root"/}
grep -qF "figures: $want, " "$d/stats.md" || { cat "$d/stats.md"; die "the table should name its figures as $want"; }

# 7. A sweep begun elsewhere goes on in a new run directory (FIGURE_ROWS_FROM): the carried rows and their
#    per-epoch logs come along and are not trained again; teachers that score otherwise are refused, and
#    accepted within FIGURE_TEACHERS_TOLERANCE.
mkdir -p "$d/part/figure" "$d/run2" "$d/run3"
grep -v '^mlp16,' "$d/csv2" >"$d/part/figure.csv"
cp "$d"/run/figure/fc32_*_s1.csv "$d/part/figure/"
for r in run2 run3; do cp -r "$d"/run/data "$d"/run/teachers "$d"/run/transfer.h5 "$d"/run/logits_*.h5 "$d/$r/"; done
RUN=$d/run2 FIGURE_ROWS_FROM=$d/part fig sweep >"$d/out7" 2>&1 || { tail -30 "$d/out7"; die "the carried sweep failed"; }
grep -q "4 rows carried from $d/part/figure.csv" "$d/out7" || { head -30 "$d/out7"; die "no notice of the carried rows"; }
grep -q "as the carried rows' did" "$d/out7" || die "the teachers were not checked against the carried rows"
[ "$(grep -c 'its row is in figure.csv, skipped' "$d/out7")" -eq 2 ] || { cat "$d/out7"; die "fc32 was not skipped"; }
[ "$(grep -c '^epoch 1/1 ' "$d/out7")" -eq 2 ] || { cat "$d/out7"; die "expected mlp16's two runs to train"; }
[ "$(grep -c -E '^(fc32|mlp16),' "$d/run2/figure.csv")" -eq 4 ] || { cat "$d/run2/figure.csv"; die "expected 4 student rows"; }
[ -f "$d/run2/figures/figure_curves.png" ] || die "the carried pair's curves were not drawn"
sed 's/^\(ensemble,teachers,-,teachers,-,[0-9]*,[0-9.]*,\)[0-9.]*/\112.34/' "$d/part/figure.csv" >"$d/part/x" && mv "$d/part/x" "$d/part/figure.csv"
RUN=$d/run3 FIGURE_ROWS_FROM=$d/part fig sweep >"$d/out8" 2>&1 && die "other teachers should be refused"
grep -q "measured against an ensemble at 12.34% test accuracy, the teachers in $d/run3/teachers score [0-9.]*%: not the same teachers" "$d/out8" ||
  { tail -5 "$d/out8"; die "no message about other teachers"; }
! grep -q 'epoch 1/' "$d/out8" || die "a sweep against other teachers trained"
[ ! -e "$d/run3/figure.csv" ] || die "refused rows were left in figure.csv (a rerun would not check them again)"
RUN=$d/run3 FIGURE_ROWS_FROM=$d/part FIGURE_TEACHERS_TOLERANCE=x fig sweep >"$d/out9" 2>&1 && die "a bad tolerance should be refused"
grep -q "FIGURE_TEACHERS_TOLERANCE: 'x' is not a number of points" "$d/out9" || { tail -5 "$d/out9"; die "no bad-tolerance message"; }
RUN=$d/run3 FIGURE_ROWS_FROM=$d/part FIGURE_TEACHERS_TOLERANCE=100 fig sweep >"$d/out10" 2>&1 ||
  { tail -30 "$d/out10"; die "teachers within FIGURE_TEACHERS_TOLERANCE should be accepted"; }
grep -q "the carried rows' 12.34%: within FIGURE_TEACHERS_TOLERANCE=100 points, going on" "$d/out10" ||
  { head -40 "$d/out10"; die "no notice of the accepted difference"; }
[ "$(grep -c '^epoch 1/1 ' "$d/out10")" -eq 2 ] || { cat "$d/out10"; die "expected mlp16's two runs to train"; }
[ ! -e "$d/run3/.figure_rows_unchecked" ] || die "the checked rows are still marked unchecked"
# rows carried but not yet checked (a run stopped in between) are checked by the rerun
touch "$d/run3/.figure_rows_unchecked"
RUN=$d/run3 fig sweep >"$d/out11" 2>&1 && die "unchecked carried rows should be checked again"
grep -q "not the same teachers" "$d/out11" || { tail -5 "$d/out11"; die "no check of the unchecked rows"; }
echo "figure smoke: passed"
