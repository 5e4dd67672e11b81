#!/usr/bin/env bash
# Kills one rank of a running `mimic data import` (Fashion-MNIST, 2 ranks) with SIGKILL, reruns the same
# command, and checks that nothing looked finished after the kill, that the rerun resumes the partial files
# (only the missing blocks), and that the files equal an uninterrupted run's (content digests); and that a
# resume refuses a partial file whose done block was changed after it was written.
source "$(dirname "$0")/common.sh"
d=$(scratch import_kill_resume)
args=(data import --block-rows 1000 --val 5000 --flush-seconds 0) # each round's blocks marked done
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out-dir "$d/ref" --quiet || die "reference run failed"

MIMIC_PROGRESS_INTERVAL=0.05 "$MPIEXEC" -n 2 -x MIMIC_PROGRESS_INTERVAL "$MIMIC" "${args[@]}" --out-dir "$d/out" \
  >"$d/log1" 2>&1 &
launcher=$!
killed=0
for _ in $(seq 1 1200); do
  if grep -qE "\] +([2-8][0-9])\.[0-9]%" "$d/log1"; then
    pid=$(pgrep -f "^$MIMIC data import.*$d/out" | head -1) # a rank, not the launcher
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
    break
  fi
  kill -0 $launcher 2>/dev/null || break
  sleep 0.02
done
wait $launcher
rc=$?
[ $killed -eq 1 ] || { cat "$d/log1"; die "the run ended before it could be killed mid-way"; }
[ $rc -ne 0 ] || die "a killed job should exit non-zero"
for f in train val test; do [ ! -e "$d/out/$f.h5" ] || die "a killed run left $f.h5, which looks complete"; done
[ -e "$d/out/train.h5.partial" ] || die "no partial file to resume from"

# A copy of the partial files, with one value of a done block of train.h5.partial changed afterwards.
rm -rf "$d/bad" && cp -r "$d/out" "$d/bad" && rm -f "$d/bad"/*.lock
row=$("$MIMIC_PYTHON" -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r+') as f:
    k = int(next(i for i, v in enumerate(f['progress/done'][()]) if v))
    f['X'][k * 1000 + 7, 3] += 0.5
    print(k * 1000)" "$d/bad/train.h5.partial") || die "could not change a done block"

"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out-dir "$d/out" >"$d/log2" 2>&1 || { cat "$d/log2"; die "rerun failed"; }
grep -qE "resuming .*train.h5.partial: [1-9][0-9]* of 55 blocks already done" "$d/log2" ||
  { cat "$d/log2"; die "rerun did not resume"; }
for f in train val test; do
  [ ! -e "$d/out/$f.h5.partial" ] || die "$f.h5.partial left behind"
  a=$("$MIMIC_PYTHON" "$TESTS_DIR/golden/h5digest.py" "$d/ref/$f.h5")
  b=$("$MIMIC_PYTHON" "$TESTS_DIR/golden/h5digest.py" "$d/out/$f.h5")
  [ "$a" = "$b" ] || die "resumed $f.h5 differs from the uninterrupted run"
done
grep -h "resuming" "$d/log2"
# A resume trusts done blocks only once their rows hash to the recorded block hash.
if "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out-dir "$d/bad" >"$d/log3" 2>&1; then
  cat "$d/log3"; die "a resume reused a changed done block"
fi
grep -q "$d/bad/train.h5.partial: rows \[$row, $((row + 1000))) differ from the block hash recorded" "$d/log3" ||
  { cat "$d/log3"; die "the changed block is not named"; }
[ ! -e "$d/bad/train.h5" ] || die "a file was finished from a changed partial file"
grep -h "differ from the block hash" "$d/log3"
echo "import kill-and-resume: passed"
