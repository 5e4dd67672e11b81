# Where Mimic's job scripts find things (sourced by common.sh, submit.sh and status.sh). The scripts live
# under ROOT/jobs/slurm, where ROOT is a source checkout or an install's share/mimic (MIMIC_SHARE).
#   mimic_is_checkout ROOT   true in a source checkout (ROOT/CMakeLists.txt), false in an install
#   mimic_default_bin ROOT   the executable the jobs run when MIMIC_BIN is not set: ROOT/build/mimic in a
#                            built checkout, else `mimic` on PATH (an install's module puts P/bin there);
#                            prints nothing when there is neither
#   mimic_default_run_dir ROOT   ROOT/run/slurm in a checkout, $PWD/run/slurm from an install
# shellcheck shell=bash

mimic_is_checkout() { [ -f "$1/CMakeLists.txt" ]; }

mimic_default_bin() {
    if mimic_is_checkout "$1" && [ -x "$1/build/mimic" ]; then
        echo "$1/build/mimic"
    else
        command -v mimic || true
    fi
}

mimic_default_run_dir() {
    if mimic_is_checkout "$1"; then echo "$1/run/slurm"; else echo "$PWD/run/slurm"; fi
}

# The error when mimic_default_bin finds nothing.
mimic_no_bin_message() {
    echo "no mimic executable: MIMIC_BIN is not set, $1/build/mimic does not exist and mimic is not on PATH" \
        "(build Mimic, load the mimic module or set MIMIC_BIN)"
}
