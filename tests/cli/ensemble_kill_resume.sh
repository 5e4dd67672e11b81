#!/usr/bin/env bash
# Kills one rank of `mimic ensemble train` after some members are finished; a rerun keeps the finished
# members untouched and trains only the missing ones, then writes the manifest.
source "$(dirname "$0")/common.sh"
p="$PWD/scratch/cli.pipeline"
d=$(scratch ensemble_kill_resume)
args=(ensemble train --members 4 --arch dense:256,relu,dense:10 --data "$p/data/train.h5" --epochs 1 --out-dir "$d/ens")
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" >"$d/log1" 2>&1 &
launcher=$!
killed=0
for _ in $(seq 1 1200); do
  if ls "$d"/ens/member-00[01].h5 >/dev/null 2>&1; then
    pid=$(pgrep -f "mimic ensemble train.*$d/ens" | tail -1)
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
    break
  fi
  kill -0 $launcher 2>/dev/null || break
  sleep 0.05
done
wait $launcher
[ $killed -eq 1 ] || { cat "$d/log1"; die "the run ended before it could be killed"; }
[ ! -e "$d/ens/manifest.h5" ] || die "a killed run wrote a manifest"
before=$(ls "$d"/ens/member-*.h5 | wc -l)
[ "$before" -ge 1 ] && [ "$before" -lt 4 ] || die "expected some but not all members after the kill, found $before"
sums=$(cd "$d/ens" && md5sum member-*.h5)
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" >"$d/log2" 2>&1 || { cat "$d/log2"; die "rerun failed"; }
grep -q "$before already trained, $((4 - before)) to train" "$d/log2" || { grep "already trained" "$d/log2"; die "rerun did not keep the finished members"; }
(cd "$d/ens" && echo "$sums" | md5sum -c --quiet) || die "finished members were rewritten"
"$MIMIC" ensemble info "$d/ens/manifest.h5" | grep -q "4 members" || die "manifest incomplete"
echo "ensemble kill-and-resume: passed ($before members kept)"
