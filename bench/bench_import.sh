#!/usr/bin/env bash
# `mimic data import` of a CIFAR-shaped uint8 .npy (N x 32 x 32 x 3, NHWC, real random bytes) against `dd`
# reading the same file and `dd` copying it to a new file made durable (conv=fsync: the least any import that
# writes the source's bytes can take), each after dropping the page cache (cold) when run as root, on NP
# ranks; prints wall seconds, the ratios to both, the phases, CPU seconds and the largest RSS per rank, one
# row per binary. Every file written is removed and the disk given SETTLE seconds (default 3) before the
# next cold run, so that each writes to blocks freed alike (this VM's disk is mounted with discard).
# Usage: bench/bench_import.sh ROWS [NP] [BINARY...]   (default binary: build/mimic; BENCH_DIR: scratch
# directory, default /tmp/mimic-bench-import; KEEP=1 keeps the source for a later run). Needs ~3 KB x ROWS
# for the source and 4x that for the float32 output, removed afterwards. SOURCE=npz writes the rows as a
# member of an np.savez_compressed archive instead (held in memory once to write it), with pixels of 4 bits
# of noise over a ramp (deflate: about 1.2:1), and imports FILE.npz:x. STORE=uint8|fp16|fp32 passes --store
# (default: the import's own, fp32).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
rows=${1:?usage: bench_import.sh ROWS [NP] [BINARY...]}
np=${2:-2}
shift $(($# < 2 ? $# : 2))
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$here/../build/mimic")
d=${BENCH_DIR:-/tmp/mimic-bench-import}
mkdir -p "$d"
kind=${SOURCE:-npy}
src=$d/x$rows.$kind
spec=$src
[ "$kind" = npy ] || spec=$src:x
if [ ! -e "$src" ]; then
  /usr/bin/python3 - "$d" "$rows" "$kind" <<'PY'
import sys, numpy as np
d, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
if kind == "npz":
    m = (rng.integers(0, 16, size=(n, 32, 32, 3), dtype=np.uint8) + 4 * np.arange(32, dtype=np.uint8)[:, None, None])
    np.savez_compressed(f"{d}/x{n}.npz", x=m)
else:
    m = np.lib.format.open_memmap(f"{d}/x{n}.npy", mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    for b in range(0, n, 65536):
        m[b:b + 65536] = rng.integers(0, 256, size=m[b:b + 65536].shape, dtype=np.uint8)
    m.flush()
np.save(f"{d}/y{n}.npy", (np.arange(n) % 10).astype(np.int64))
np.save(f"{d}/tx.npy", np.array(m[:1000]))
np.save(f"{d}/ty.npy", (np.arange(1000) % 10).astype(np.int64))
PY
fi
bytes=$(stat -c %s "$src")
echo "source: $src, $rows rows, $bytes bytes; $np ranks; store ${STORE:-fp32}; load $(load)"
settle() { sync && sleep "${SETTLE:-3}"; }
settle
c=$(cold)
t0=$(date +%s.%N)
dd if="$src" of=/dev/null bs=16M status=none
dd_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
printf "dd bs=16M (%s): %.2f s, %.0f MB/s\n" "$c" "$dd_s" "$(echo "$bytes / $dd_s / 1000000" | bc -l)"
c=$(cold)
t0=$(date +%s.%N)
dd if="$src" of="$d/copy" bs=16M conv=fsync status=none
copy_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
rm -f "$d/copy"
printf "dd copy to a new file, conv=fsync (%s): %.2f s, %.1fx the read\n" "$c" "$copy_s" \
  "$(echo "$copy_s / $dd_s" | bc -l)"
printf "%-40s %6s %8s %7s %7s %8s %8s %8s %9s  %s\n" binary cache wall_s x_dd x_copy stats_s write_s cpu_s \
  rss_MB fingerprint
for b in "${bins[@]}"; do
  rm -rf "$d/out"
  settle
  c=$(cold)
  t0=$(date +%s.%N)
  read -r rss cpu < <(mpirun_timed "$d" "$d/log" "$np" "$b" data import --train-images "$spec" \
    --train-labels "$d/y$rows.npy" --test-images "$d/tx.npy" --test-labels "$d/ty.npy" --layout nhwc --val 0 \
    --out-dir "$d/out" --name bench ${STORE:+--store "$STORE"})
  wall=$(echo "$(date +%s.%N) - $t0" | bc -l)
  stats=$(awk '$1 == "statistics" {print $4}' "$d/log")
  write=$(awk '$1 == "write" {print $4}' "$d/log")
  fp=$(grep -o 'train.h5: .*fingerprint [0-9a-f]*' "$d/log" | awk '{print $NF}')
  printf "%-40s %6s %8.2f %7.1f %7.2f %8s %8s %8.1f %9s  %s\n" "$b" "$c" "$wall" "$(echo "$wall / $dd_s" | bc -l)" \
    "$(echo "$wall / $copy_s" | bc -l)" "$stats" "$write" "$cpu" "$rss" "$fp"
  rm -rf "$d/out"
done
echo "load after: $(load)"
[ "${KEEP:-0}" = 1 ] || rm -f "$src" "$d/y$rows.npy" "$d/tx.npy" "$d/ty.npy"
