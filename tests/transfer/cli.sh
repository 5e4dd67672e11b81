#!/usr/bin/env bash
# `mimic transfer` through the real CLI on 2 ranks: `run` builds a transfer set and checks the file;
# every other case is one bad input that must fail with a one-line error and leave no output behind.
source "$(dirname "$0")/../cli/common.sh"
: "${TRANSFER_FIXTURE:?TRANSFER_FIXTURE must point at the transfer_fixture executable}"
case=$1
d=$(scratch "transfer.$case")
mpi=("$MPIEXEC" -q -n 2)
"${mpi[@]}" "$TRANSFER_FIXTURE" "$d/a.h5" 120 1 6 6 1 || die "fixture a.h5"
"${mpi[@]}" "$TRANSFER_FIXTURE" "$d/b.h5" 50 1 6 6 2 || die "fixture b.h5"
out="$d/t.h5"

case $case in
run)
  "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --from "$d/b.h5" --size 700 --out "$out" --augment 1 --munge 1 \
    --shift 1 --flip --noise 0.1 --mixup-prob 0.3 --munge-p 0.4 --munge-s 2 --block-rows 64 >"$d/log" 2>&1 ||
    { cat "$d/log"; die "mimic transfer failed"; }
  grep -q "transfer summary: .*700 rows x 36 (170 source copies" "$d/log" || { cat "$d/log"; die "no summary"; }
  [ -f "$out" ] || die "no output file"
  [ -z "$(find "$d" -name '*.partial' -o -name '*.neighbours')" ] || die "partial or scratch files left behind"
  # Stopped after 2 rounds on 2 ranks, the run keeps r.h5.partial (4 of the 12 blocks: 3 of copies, 9
  # generated), every one recorded although no timed flush fell due; other settings are refused; the
  # same command on 1 rank (and its default --flush-seconds) resumes it and writes the same rows
  # (fingerprint) as the uninterrupted run.
  args=(--from "$d/a.h5" --from "$d/b.h5" --size 700 --augment 1 --munge 1 --shift 1 --flip --noise 0.1
    --mixup-prob 0.3 --munge-p 0.4 --munge-s 2 --block-rows 64)
  "${mpi[@]}" "$MIMIC" transfer "${args[@]}" --out "$d/r.h5" --stop-after-blocks 2 --flush-seconds 1e9 >"$d/log2" 2>&1 ||
    { cat "$d/log2"; die "the stopped run failed"; }
  grep -q "transfer: stopped (--stop-after-blocks) with" "$d/log2" || { cat "$d/log2"; die "no stop message"; }
  [ -f "$d/r.h5.partial" ] && [ ! -e "$d/r.h5" ] || die "a stopped run must leave r.h5.partial and no r.h5"
  expect_fail "r.h5.partial: a partial transfer set from other sources or settings exists" \
    "${mpi[@]}" "$MIMIC" transfer "${args[@]}" --out "$d/r.h5" --seed 9
  "$MIMIC" transfer "${args[@]}" --out "$d/r.h5" >"$d/log3" 2>&1 || { cat "$d/log3"; die "the resumed run failed"; }
  grep -q "transfer: resuming .*r.h5.partial: 4 of 12 blocks" "$d/log3" || { cat "$d/log3"; die "not resumed"; }
  fp=$(grep -o 'fingerprint [0-9a-f]*' "$d/log" | tail -1)
  [ -n "$fp" ] && [ "$(grep -o 'fingerprint [0-9a-f]*' "$d/log3" | tail -1)" = "$fp" ] ||
    die "the resumed file differs from the uninterrupted one ($fp)"
  [ ! -e "$d/r.h5.partial" ] || die "r.h5.partial left behind"
  "$MIMIC" info "$out" >"$d/info" || die "mimic info failed"
  for obj in /X /provenance/source_row /provenance/generator /provenance/partner_row /munge/neighbour; do
    grep -q "$obj" "$d/info" || { cat "$d/info"; die "$obj missing"; }
  done
  grep -q "/y" "$d/info" && die "the transfer set must not hold labels"
  # Refuses to replace the file without --overwrite, replaces it with --overwrite.
  expect_fail "$out: the output file exists and was not made with these sources and settings" "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" \
    --size 200 --out "$out" --augment 1 --flip
  "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 200 --out "$out" --augment 1 --flip --overwrite --quiet ||
    die "--overwrite failed"
  echo "transfer run: passed"
  exit 0
  ;;
empty_source)
  "${mpi[@]}" "$TRANSFER_FIXTURE" "$d/empty.h5" 0 1 6 6 || die "fixture empty.h5"
  expect_fail "$d/empty.h5: the source dataset holds no rows" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --from "$d/empty.h5" --size 500 --out "$out" --augment 1 --flip
  ;;
different_d)
  "${mpi[@]}" "$TRANSFER_FIXTURE" "$d/c.h5" 40 1 5 5 || die "fixture c.h5"
  expect_fail "$d/c.h5: rows have D = 25 features but $d/a.h5 has D = 36" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --from "$d/c.h5" --size 500 --out "$out" --munge 1
  ;;
size_too_small)
  expect_fail "--size: 100 rows is smaller than the 170 source rows; pass --subsample" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --from "$d/b.h5" --size 100 --out "$out"
  ;;
munge_p_range)
  expect_fail "--munge-p: the MUNGE swap probability must be in \[0, 1\], got 1.5" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out" --munge 1 --munge-p 1.5
  expect_fail "--munge-p: the MUNGE swap probability must be in \[0, 1\], got -0.1" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out" --munge 1 --munge-p -0.1
  ;;
munge_s_range)
  expect_fail "--munge-s: the MUNGE spread divisor s must be a positive number, got 0" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out" --munge 1 --munge-s 0
  ;;
existing_output)
  cp "$d/b.h5" "$out"
  expect_fail "$out: the output file exists and was not made with these sources and settings; pass --overwrite" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out" --munge 1
  cmp -s "$d/b.h5" "$out" || die "the existing output was modified"
  rm -f "$out"
  ;;
no_generator)
  expect_fail "--size: 500 rows exceeds the 120 source rows but no generator is enabled" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out"
  expect_fail "--augment: no augmentation is enabled" \
    "${mpi[@]}" "$MIMIC" transfer --from "$d/a.h5" --size 500 --out "$out" --augment 1
  ;;
*)
  die "unknown case $case"
  ;;
esac
left=$(find "$d" -name 't.h5*' | head -1)
[ -z "$left" ] || die "an output file was left behind: $left"
echo "bad input '$case': passed"
