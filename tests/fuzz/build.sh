#!/usr/bin/env bash
# Configures and builds the libFuzzer targets (fuzz_idx, fuzz_npy, fuzz_cifar, fuzz_hdf5, fuzz_spec, fuzz_ini,
# fuzz_onnx, fuzz_model, fuzz_checkpoint) with clang,
# AddressSanitizer and coverage instrumentation, into build-fuzz/ (or $BUILD_DIR). See README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}
cc=${CC_FUZZ:-$(command -v clang-14 || command -v clang)}
mkdir -p "$build"
flags="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -gline-tables-only"
# -O1, as libFuzzer's documentation suggests: about half the compile time of -O3, and still fast to fuzz.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DMIMIC_ENABLE_FUZZ=ON \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
ninja -C "$build" ${NINJA_JOBS:+-j"$NINJA_JOBS"} fuzz_idx fuzz_npy fuzz_cifar fuzz_hdf5 fuzz_spec fuzz_ini fuzz_onnx fuzz_model fuzz_checkpoint fuzz_replay
echo "fuzz targets built in $build"
