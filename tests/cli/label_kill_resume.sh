#!/usr/bin/env bash
# Kills one rank of a running `mimic label` with SIGKILL, reruns the same command, and checks that it
# resumes (only the missing blocks) and that the final logits equal an uninterrupted run bit for bit.
source "$(dirname "$0")/common.sh"
p="$PWD/scratch/cli.pipeline"
d=$(scratch label_kill_resume)
args=(label --ensemble "$p/ens/manifest.h5" --transfer "$p/data/train.h5" --block-rows 1024)
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/ref.h5" --quiet || die "reference run failed"

MIMIC_PROGRESS_INTERVAL=0.1 "$MPIEXEC" -n 2 -x MIMIC_PROGRESS_INTERVAL "$MIMIC" "${args[@]}" --out "$d/out.h5" >"$d/log1" 2>&1 &
launcher=$!
killed=0
for _ in $(seq 1 600); do
  if grep -qE "\] +([2-9][0-9])\.[0-9]%" "$d/log1"; then
    pid=$(pgrep -f "mimic label.*$d/out.h5" | head -1)
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
    break
  fi
  kill -0 $launcher 2>/dev/null || break
  sleep 0.05
done
wait $launcher
rc=$?
[ $killed -eq 1 ] || { cat "$d/log1"; die "the run ended before it could be killed mid-way"; }
[ $rc -ne 0 ] || die "a killed job should exit non-zero"
[ ! -e "$d/out.h5" ] || die "a killed run left a file that looks complete"
[ -e "$d/out.h5.partial" ] || die "no partial file to resume from"

"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/out.h5" >"$d/log2" 2>&1 || { cat "$d/log2"; die "rerun failed"; }
grep -qE "resuming .* [1-9][0-9]* of 54 blocks already done|starting over" "$d/log2" || { cat "$d/log2"; die "rerun did not resume"; }
"$MIMIC_PYTHON" - "$d/ref.h5" "$d/out.h5" <<'PY' || die "resumed logits differ from the uninterrupted run"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
assert np.array_equal(a["logits"][...], b["logits"][...]), "logits differ"
assert a.attrs["logits_fingerprint"] == b.attrs["logits_fingerprint"]
assert int(b.attrs["complete"]) == 1
print("resumed file equals the uninterrupted one:", a["logits"].shape)
PY
grep -h "resuming\|starting over" "$d/log2"
echo "label kill-and-resume: passed"
