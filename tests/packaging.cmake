# Packaging tests (issue: installable on a supercomputer). packaging.install: `cmake --install` of this
# build into a fresh prefix, then the installed job scripts run the pipeline under a private SLURM against
# the installed executable, found on PATH (shares the SLURM tests' cluster lock).
mimic_script_test(packaging.install packaging/install.sh ${PROJECT_BINARY_DIR})
set_tests_properties(packaging.install PROPERTIES RESOURCE_LOCK slurm_cluster PROCESSORS 2 TIMEOUT 600
                                                  LABELS "slurm;packaging")
