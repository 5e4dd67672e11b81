#!/usr/bin/env bash
# The container images' build steps without a container: packaging/container/build_in_image.sh (which the
# Apptainer definition's %post and the Dockerfile's RUN call) builds and installs Mimic from exactly the files
# the definition copies into the image, into a fresh prefix; the installed binary names that prefix and
# imports the data. The package step is only checked (every package is installed here, as tests/run.sh's
# jobs/install_deps.sh does), never run: tests do not call apt-get. What this cannot run is `apptainer build`
# itself (it pulls debian:12 from a registry). Usage: container.sh BUILD_DIR [COMPILER_LAUNCHER]
source "$(dirname "$0")/../cli/common.sh"
launcher=${2:-}
root=$(cd "$TESTS_DIR/.." && pwd)
def=$root/packaging/apptainer/mimic.def docker=$root/packaging/container/Dockerfile
script=$root/packaging/container/build_in_image.sh
d=$(scratch packaging.container)

# --- the package list: a subset of jobs/install_deps.sh's, all installed ---------------------------------------
list() { sed -n '/^packages=(/,/^)/p' "$1" | sed '1d;$d' | tr ' ' '\n' | grep -E '^[a-z0-9]' | sort -u; }
extra=$(comm -23 <(list "$script") <(list "$root/jobs/install_deps.sh"))
[ -z "$extra" ] || die "build_in_image.sh needs packages that jobs/install_deps.sh does not install: $extra"
"$script" deps --check || die "build_in_image.sh deps --check failed"

# --- the image definitions copy the same files and run the same steps ---------------------------------------------
files=$(sed -n '/^%files/,/^%/p' "$def" | awk 'NF == 2 && $2 ~ /^\/opt\/mimic-src\// {print $1}' | sort)
[ -n "$files" ] || die "no %files in $def"
copied=$(sed -n 's/^COPY //p' "$docker" | awk '{for (i = 1; i < NF; i++) print $i}' | sort)
[ "$files" = "$copied" ] || die "mimic.def copies $(echo "$files" | paste -sd' '), the Dockerfile $(echo "$copied" | paste -sd' ')"
for f in "$def" "$docker"; do
    grep -qF "/opt/mimic-src/packaging/container/build_in_image.sh deps" "$f" || die "$f does not install the packages"
    grep -qF "/opt/mimic-src/packaging/container/build_in_image.sh build /opt/mimic-src /tmp/mimic-build /opt/mimic" "$f" ||
        die "$f does not build into /opt/mimic with build_in_image.sh"
done

# --- build and install from exactly those files -------------------------------------------------------------------
mkdir -p "$d/src"
for f in $files; do cp -r "$root/$f" "$d/src/$f"; done
"$script" build "$d/src" "$d/build" "$d/prefix" ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher} ||
    die "build_in_image.sh build failed"
exe=$d/prefix/bin/mimic
"$exe" --version | grep -q "^mimic .*(git unknown, Release)" || die "the image's build is not a Release build"
[ -f "$d/prefix/share/mimic/jobs/slurm/submit.sh" ] || die "the install lacks the job scripts"
compgen -G "$d/prefix/share/mimic/modulefiles/mimic/*.lua" >/dev/null || die "the install lacks the module file"
(cd "$d" && "$MPIEXEC" -n 2 "$exe" data import --out-dir data --val 5000 >import.log 2>&1) || {
    cat "$d/import.log"
    die "the installed mimic did not import the data"
}
"$exe" info "$d/data/train.h5" | grep -q "\[55000, 784\]" || die "train.h5 does not hold 55000 rows"
echo "container build steps: passed"
