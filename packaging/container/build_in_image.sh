#!/usr/bin/env bash
# The build steps of Mimic's container images (packaging/apptainer/mimic.def, packaging/container/Dockerfile)
# on Debian 12, kept in one script that the images' build and the test packaging.container both run.
#
# Usage: build_in_image.sh deps [--check]
#          installs the Debian packages the build and the runs need (apt-get, as root); with --check only
#          lists the missing ones and exits 1 if any is (the tests: they never run apt-get)
#        build_in_image.sh build SRC BUILD_DIR PREFIX [cmake arguments...]
#          configures SRC (Release, no tests, no benchmarks), builds in BUILD_DIR, installs into PREFIX and
#          checks that PREFIX/bin/mimic --version names PREFIX
set -euo pipefail

# Build and run time: compiler and CMake, Open MPI, parallel HDF5, Boost.Program_options, Kokkos and Kokkos
# Kernels with OpenBLAS, ONNX/protobuf, and the Fashion-MNIST data the example configurations read. All of
# them are in jobs/install_deps.sh's list too, so CI machines (tests/run.sh) have them.
packages=(
  g++ cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools zlib1g-dev libpng-dev libjpeg62-turbo-dev
  libboost-program-options-dev
  libtrilinos-kokkos-dev libtrilinos-kokkos-kernels-dev libopenblas-dev
  libonnx-dev libprotobuf-dev
  dataset-fashion-mnist
)

die() {
  echo "build_in_image: error: $*" >&2
  exit 1
}

deps() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "build_in_image: all ${#packages[@]} packages are installed"
    return 0
  fi
  [ "${1:-}" != --check ] || die "missing packages: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not running as root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  [ $# -ge 3 ] || die "usage: build_in_image.sh build SRC BUILD_DIR PREFIX [cmake arguments...]"
  local src=$1 build=$2 prefix=$3
  shift 3
  [ -f "$src/CMakeLists.txt" ] || die "$src is not the Mimic source tree (no CMakeLists.txt)"
  mkdir -p "$(dirname "$build")"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DMIMIC_ENABLE_TESTS=OFF -DMIMIC_ENABLE_BENCH=OFF "$@" >"$build.configure.log" 2>&1 || {
    cat "$build.configure.log" >&2
    die "cmake configuration failed"
  }
  local start
  start=$(date +%s)
  ninja -C "$build" >"$build.build.log" 2>&1 || {
    grep -E -A8 "error|FAILED" "$build.build.log" | head -60 >&2
    die "compilation failed (full log: $build.build.log)"
  }
  echo "build_in_image: built in $(($(date +%s) - start)) s"
  cmake --install "$build" >"$build.install.log" 2>&1 || {
    cat "$build.install.log" >&2
    die "cmake --install failed"
  }
  "$prefix/bin/mimic" --version | grep -qxF "  install $prefix (share $prefix/share/mimic)" ||
    die "$prefix/bin/mimic --version does not name the install $prefix"
  echo "build_in_image: installed into $prefix"
}

case "${1:-}" in
deps) deps "${@:2}" ;;
build) build "${@:2}" ;;
*) die "usage: build_in_image.sh deps [--check] | build SRC BUILD_DIR PREFIX [cmake arguments...]" ;;
esac
