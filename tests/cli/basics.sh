#!/usr/bin/env bash
# CLI conventions: --version, --help, unknown commands/options, bad values, --config INI files where
# the command line wins, and rank-0-only output under mpirun.
source "$(dirname "$0")/common.sh"
d=$(scratch basics)

v=$("$MIMIC" --version) || die "--version failed"
for w in "mimic 0.1" "git" "Kokkos" "Serial\|Cuda" "MPI" "HDF5" "parallel"; do
  echo "$v" | grep -q "$w" || die "--version lacks '$w': $v"
done

"$MIMIC" --help | grep -q "data import" || die "--help does not list commands"
"$MIMIC" data import --help | grep -q -- "--val" || die "command --help does not list options"

expect_fail "unknown command 'frobnicate'" "$MIMIC" frobnicate
expect_fail "unrecognised option '--bogus'" "$MIMIC" data import --bogus 1
expect_fail "invalid" "$MIMIC" data import --val abc

# Config file: [data-import] section and plain keys; the command line wins over the file.
cat >"$d/good.cfg" <<CFG
# comment
[data-import]
val = 100
norm = bogus
out-dir = $d/out
[info]
file = unused.h5
CFG
out=$("$MIMIC" data import --config "$d/good.cfg" --val 200 2>"$d/err")
rc=$?
[ $rc -ne 0 ] || die "norm=bogus from the config file should fail"
echo "$out" | grep -q "val = 200" || die "command line did not win over the config file: $out"
echo "$out" | grep -q "norm = bogus" || die "config file value not applied: $out"
grep -q "norm: 'bogus'" "$d/err" || die "bad config value not reported: $(cat "$d/err")"

printf 'val = 10\nnot-an-option = 1\n' >"$d/bad.cfg"
expect_fail "bad.cfg: unknown option 'not-an-option'" "$MIMIC" data import --config "$d/bad.cfg"
printf '[nosuchcommand]\nx = 1\n' >"$d/badsec.cfg"
expect_fail "unknown section \[nosuchcommand\]" "$MIMIC" data import --config "$d/badsec.cfg"
expect_fail "missing.cfg: cannot open the config file" "$MIMIC" data import --config "$d/missing.cfg"

# Only rank 0 prints: the configuration banner appears once with 2 ranks.
out=$("$MPIEXEC" -n 2 "$MIMIC" info "$d/nothing.h5" 2>"$d/err2")
[ $? -ne 0 ] || die "info on a missing file should fail"
n=$(echo "$out" | grep -c "resolved configuration")
[ "$n" -eq 1 ] || die "expected one configuration banner with 2 ranks, got $n"
n=$(grep -c "nothing.h5: no such file" "$d/err2")
[ "$n" -eq 1 ] || die "expected the error once, got $n: $(cat "$d/err2")"
echo "basics: all checks passed"
