#!/usr/bin/env bash
# `mimic info` on an ensemble manifest lists its members, and `mimic eval --compare` gives the paired
# margin of one model over another: counts and interval checked against an independent computation from
# the models' logits, identical on 1 and 2 ranks, and "within noise" for a model against itself.
source "$(dirname "$0")/common.sh"
f="$PWD/scratch/cli.pipeline"
[ -f "$f/ens/manifest.h5" ] || die "the pipeline fixture is missing ($f)"
d=$(scratch compare_info)

# info: one line per member with path, arch, params, val accuracy and the member file's checksum.
info=$("$MIMIC" info "$f/ens/manifest.h5") || die "mimic info on the manifest failed"
echo "$info" | grep -q "^  members (3, ensemble checksum [0-9a-f]\{16\}):" || { echo "$info"; die "no members header"; }
for i in 0 1 2; do
  m=$(printf 'member-%03d.h5' "$i")
  sum=$("$MIMIC" info "$f/ens/$m" | awk -F'"' '/@weights_checksum/{print $2}')
  [ -n "$sum" ] || die "no checksum in $m"
  echo "$info" | grep -q "^    $i  $m  arch dense:1024,relu,dense:10  params 814090  val acc \(-\|[0-9.]*%\)  checksum $sum\$" ||
    { echo "$info"; die "member $i not listed with its checksum $sum"; }
done

# eval --compare: A = member 0, B = member 1 on the test set, 1 and 2 ranks.
a=$f/ens/member-000.h5 b=$f/ens/member-001.h5 t=$f/data/test.h5
paired() { sed -n '/^paired comparison/,/verdict/p' "$1"; }
"$MIMIC" eval --model "$a" --compare "$b" --data "$t" >"$d/c1.txt" || die "eval --compare failed"
"$MPIEXEC" -n 2 "$MIMIC" eval --model "$a" --compare "$b" --data "$t" >"$d/c2.txt" || die "eval --compare (2 ranks) failed"
[ -n "$(paired "$d/c1.txt")" ] || { cat "$d/c1.txt"; die "no paired comparison printed"; }
[ "$(paired "$d/c1.txt")" = "$(paired "$d/c2.txt")" ] || { paired "$d/c1.txt"; paired "$d/c2.txt"; die "differs between 1 and 2 ranks"; }
for m in a b; do
  "$MIMIC" ensemble add --manifest "$d/$m.manifest.h5" "${!m}" --quiet || die "ensemble add $m"
  "$MIMIC" label --ensemble "$d/$m.manifest.h5" --transfer "$t" --out "$d/logits_$m.h5" --quiet || die "label $m"
done
"$MIMIC_PYTHON" "$TESTS_DIR/python/paired_check.py" "$d/logits_a.h5" "$d/logits_b.h5" "$t" "$d/c1.txt" ||
  die "the paired comparison differs from the independent computation"
# The accuracies match plain `mimic eval`.
acc_a=$("$MIMIC" eval --model "$a" --data "$t" | awk '/^  accuracy /{print $2}')
grep -q "^  accuracy A $acc_a, B " "$d/c1.txt" || die "accuracy A differs from mimic eval's $acc_a"

# A model against itself: no discordant rows, margin 0, within noise.
"$MIMIC" eval --model "$a" --compare "$a" --data "$t" >"$d/self.txt" || die "self compare failed"
grep -q "rows only A gets right 0, only B 0 " "$d/self.txt" || die "self compare: discordant rows"
grep -q "verdict: within noise" "$d/self.txt" || die "self compare: not within noise"
expect_fail "compare: give the model to compare with --model" "$MIMIC" eval --compare "$a" --data "$t" --quiet
echo "compare_info: passed"
