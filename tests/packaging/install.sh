#!/usr/bin/env bash
# Mimic as a site installs it: `cmake --install` of this build into a fresh prefix P outside the source
# tree, `P/bin/mimic --version` naming P, the Lmod module file's PATH and MIMIC_SHARE, then the installed
# job scripts run the six-stage pipeline under a private SLURM (tests/slurm/cluster.sh) with the installed
# jobs/slurm/fashion-mnist.ini, shrunk by per-stage overrides: mimic is found on PATH (the module's bin
# only, no source tree or build directory there), MIMIC_BIN is unset and MIMIC_ROOT points nowhere. A stage
# submitted with plain sbatch finds the scripts through MIMIC_SHARE alone. Usage: install.sh BUILD_DIR
source "$(dirname "$0")/../cli/common.sh"
source "$(dirname "$0")/../slurm/cluster.sh"
build=$(cd "${1:?usage: install.sh BUILD_DIR}" && pwd)
src=$(cd "$TESTS_DIR/.." && pwd)
slurm_lock "$PWD/scratch/slurm.lock"
start=$(date +%s)
d=$PWD/scratch/packaging.install
slurm_clean_stale "$d/cluster"
rm -rf "$d" && mkdir -p "$d"
# Prefix and run directory outside the source tree; kept when the test fails.
t=$(mktemp -d /tmp/mimic-install.XXXXXX)
P=$t/prefix share=$t/prefix/share/mimic
echo "install test directory: $t"

# --- cmake --install: the executable, the job scripts, the configurations, the docs, the module file ----
cmake --install "$build" --prefix "$P" >"$d/install.log" 2>&1 || {
    cat "$d/install.log"
    die "cmake --install failed"
}
for f in bin/mimic share/mimic/jobs/env.sh share/mimic/jobs/slurm/{common.sh,locate.sh,bind.sh,submit.sh,status.sh} \
    share/mimic/jobs/slurm/{data_import,ensemble_train,transfer,label,distill,eval}.sbatch \
    share/mimic/jobs/slurm/fashion-mnist.ini share/mimic/inputs/fashion-mnist/{quickstart,study,teachers}.cfg \
    share/doc/mimic/README.md share/doc/mimic/docs/formats.md; do
    [ -f "$P/$f" ] || die "cmake --install did not install $f"
done
for f in bin/mimic share/mimic/jobs/slurm/{bind.sh,submit.sh,status.sh,label.sbatch}; do
    [ -x "$P/$f" ] || die "$f is installed without its execute permission"
done

# --- mimic --version names the install; the build tree's binary says it is not installed -----------------
v=$("$P/bin/mimic" --version) || die "P/bin/mimic --version failed"
echo "$v"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
version=$(echo "$v" | sed -n "s/^mimic \([0-9][0-9.]*\) (git [0-9a-z]*, $build_type)\$/\1/p")
[ -n "$version" ] || die "--version does not start with 'mimic <version> (git <hash>, $build_type)'"
echo "$v" | grep -q "^  Kokkos  .* backend)" || die "--version does not name the Kokkos backend"
echo "$v" | grep -qxF "  install $P (share $share)" || die "--version does not name the install prefix $P"
"$build/mimic" --version | grep -q "^  install none: .*/mimic is not installed (configured prefix " ||
    die "the build tree's mimic --version claims an install"

# --- the module file: PATH and MIMIC_SHARE of this prefix, no MANPATH (there is no man page) -------------
lua=$share/modulefiles/mimic/$version.lua
[ -f "$lua" ] || die "no module file $lua"
mod_bin=$(sed -n 's/^prepend_path("PATH", "\(.*\)")$/\1/p' "$lua")
mod_share=$(sed -n 's/^setenv("MIMIC_SHARE", "\(.*\)")$/\1/p' "$lua")
[ "$mod_bin" = "$P/bin" ] || die "the module file prepends '$mod_bin' to PATH, not $P/bin"
[ "$mod_share" = "$share" ] || die "the module file sets MIMIC_SHARE to '$mod_share', not $share"
grep -q "^whatis(\"Version: $version\")" "$lua" || die "the module file does not state version $version"
! grep -q MANPATH "$lua" || die "the module file sets MANPATH, but no man page is installed"

# --- the environment of a user who loaded the module ------------------------------------------------------
unset MIMIC MIMIC_BIN MIMIC_RUN_DIR
export MIMIC_ROOT=/nonexistent/mimic-source MIMIC_SHARE=$mod_share
export PATH="$mod_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
[ "$(command -v mimic)" = "$P/bin/mimic" ] || die "mimic on PATH is $(command -v mimic), not $P/bin/mimic"
mkdir -p "$t/run"
cd "$t" || die "cannot enter $t"
export MIMIC_CONFIG=$share/jobs/slurm/fashion-mnist.ini MIMIC_NTASKS=2
# Without MIMIC_RUN_DIR an install's submit.sh runs in ./run/slurm (a checkout uses its own run/slurm).
out=$(MIMIC_DRY_RUN=1 "$share/jobs/slurm/submit.sh" label) || die "dry run of the installed submit.sh failed"
echo "$out" | grep -qF -- "--chdir=$t/run/slurm " || die "an install's default run directory is not ./run/slurm: $out"
echo "$out" | grep -qF " $share/jobs/slurm/label.sbatch" || die "the installed submit.sh submits other scripts: $out"
PATH=/usr/bin:/bin MIMIC_DRY_RUN=1 expect_fail "no mimic executable: .*mimic is not on PATH" \
    "$share/jobs/slurm/submit.sh"

# --- the pipeline from the install under SLURM ----------------------------------------------------------------
slurm_start "$d/cluster"
export MIMIC_RUN_DIR=$t/run
export MIMIC_ENSEMBLE_TRAIN_ARGS="--members 2 --epochs 1 --arch dense:32,relu,dense:10"
export MIMIC_TRANSFER_ARGS="--size 55000 --mixup-prob 0"
export MIMIC_DISTILL_ARGS="--arch dense:64,relu,dense:10 --epochs 1"
"$share/jobs/slurm/submit.sh" >"$d/jobs.txt" || die "the installed submit.sh failed"
declare -A id
while read -r stage job; do id[$stage]=$job; done <"$d/jobs.txt"
stages=(data_import ensemble_train transfer label distill eval)
[ ${#id[@]} -eq 6 ] || die "expected six jobs"
slurm_wait "${id[@]}" --timeout 300
log() { echo "$t/run/logs/mimic-${1//_/-}-${id[$1]}.out"; }
for s in "${stages[@]}"; do
    f=$(log "$s")
    [ "$(slurm_field "${id[$s]}" JobState)" = COMPLETED ] || {
        cat "$f" >&2
        die "$s did not complete"
    }
    # The installed wrapper and the installed executable, found on PATH; nothing from the source tree.
    grep -qF "running: srun --mpi=pmix --kill-on-bad-exit=1 $share/jobs/slurm/bind.sh $P/bin/mimic ${s//_/ } " "$f" ||
        die "$s did not run $P/bin/mimic through the installed bind.sh: $(grep running: "$f")"
    grep -q "^mimic ${s//_/ } on 2 ranks" "$f" || die "$s did not run on 2 MPI ranks"
done
left=$(grep -rlF "$src" "$t/run" | head -3)
[ -z "$left" ] || die "the source tree $src appears in $left"
st=$("$share/jobs/slurm/status.sh") || die "the installed status.sh failed"
echo "$st"
[ "$(echo "$st" | grep -c ' COMPLETED ')" -eq 6 ] || die "status.sh does not show six completed jobs"
acc=$(sed -n 's/^ *accuracy *\([0-9.]*\)%.*/\1/p' "$(log eval)" | head -1)
echo "student test accuracy: $acc%"
"$MIMIC_PYTHON" -c "import sys; sys.exit(0 if float('${acc:-0}') >= 75 else 1)" ||
    die "student accuracy ${acc:-none}% < 75%"

# --- plain sbatch of an installed stage script: MIMIC_SHARE (the module) is all it needs --------------------
cd "$t/run" || die "cannot enter $t/run"
j=$(env -u MIMIC_ROOT -u MIMIC_RUN_DIR sbatch --parsable -n 2 --output="$t/run/logs/direct-%j.out" \
    "$share/jobs/slurm/eval.sbatch") || die "sbatch of the installed eval.sbatch failed"
j=${j%%;*}
slurm_wait "$j" --timeout 60
[ "$(slurm_field "$j" JobState)" = COMPLETED ] || {
    cat "$t/run/logs/direct-$j.out" >&2
    die "the plainly submitted eval.sbatch did not complete"
}
grep -qF "bind.sh $P/bin/mimic eval --config $MIMIC_CONFIG" "$t/run/logs/direct-$j.out" ||
    die "the plainly submitted eval.sbatch did not run the installed scripts and executable"
slurm_stop
rm -rf "$t"
echo "install: passed in $(($(date +%s) - start)) s"
