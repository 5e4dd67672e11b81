#!/usr/bin/env bash
# Installs the Debian 12 packages Mimic needs (build, run, tests) when any is missing; a no-op otherwise.
# Usage: jobs/install_deps.sh [extra-package ...]   (run as root; used by quickstart.sh and tests/run.sh)
set -euo pipefail

packages=(
  g++ make cmake ninja-build git pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools zlib1g-dev
  libboost-program-options-dev
  libtrilinos-kokkos-dev libtrilinos-kokkos-kernels-dev libopenblas-dev
  libgtest-dev
  libonnx-dev libprotobuf-dev
  dataset-fashion-mnist
  python3 python3-pip python3-numpy python3-h5py python3-torch
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
