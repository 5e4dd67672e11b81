#!/usr/bin/env bash
# Installs the Debian 12 packages Mimic needs (build, run, tests) when any is missing; a no-op otherwise.
# Usage: jobs/install_deps.sh [extra-package ...]   (run as root; used by quickstart.sh and tests/run.sh)
set -euo pipefail

packages=(
  g++ make cmake ninja-build git pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools zlib1g-dev libpng-dev libjpeg62-turbo-dev
  libboost-program-options-dev
  libtrilinos-kokkos-dev libtrilinos-kokkos-kernels-dev libopenblas-dev
  libgtest-dev
  libonnx-dev libprotobuf-dev
  dataset-fashion-mnist
  python3 python3-pip python3-numpy python3-h5py python3-torch python3-torchvision python3-onnx python3-pil
  slurmctld slurmd slurm-client munge python3-matplotlib
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: error: missing packages (${missing[*]}) and not running as root; install them or rerun as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=${TMPDIR:-/tmp}/mimic-install-deps.log
echo "install_deps: apt-get update (full output in $log)"
apt-get update -qq >"$log" 2>&1 || { tail -20 "$log" >&2; echo "install_deps: apt-get update failed" >&2; exit 1; }
# apt's own lines, thinned: the package count, then downloads and set-ups at every 10% (bash reads line
# by line; mawk would buffer its input).
set +e
apt-get install -y --no-install-recommends -o Dpkg::Progress-Fancy=0 "${missing[@]}" 2>&1 | tee -a "$log" | {
  total=0 got=0 done_=0 shown_got=-10 shown_set=-10
  show() { # show <what> <n> <shown percent variable>
    local pct=$((total ? 100 * $2 / total : 0))
    if [ "$pct" -ge $((${!3} + 10)) ] || [ "$2" -eq "$total" ]; then
      echo "install_deps: $1 [$2/$total]"
      printf -v "$3" '%d' $((pct - pct % 10))
    fi
  }
  while IFS= read -r line; do
    case $line in
    *" newly installed"*)
      total=$(echo "$line" | sed -n 's/.* \([0-9][0-9]*\) newly installed.*/\1/p')
      echo "install_deps: ${total:=0} packages to install" ;;
    Get:[0-9]*) show downloaded $((got += 1)) shown_got ;;
    "Setting up "*) show "set up" $((done_ += 1)) shown_set ;;
    esac
  done
}
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  tail -20 "$log" >&2
  echo "install_deps: apt-get install failed (full output in $log)" >&2
  exit 1
fi
echo "install_deps: done"
