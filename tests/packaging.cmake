# Packaging tests (issue: installable on a supercomputer). packaging.install: `cmake --install` of this
# build into a fresh prefix, then the installed job scripts run the pipeline under a private SLURM against
# the installed executable, found on PATH (shares the SLURM tests' cluster lock).
mimic_script_test(packaging.install packaging/install.sh ${PROJECT_BINARY_DIR})
set_tests_properties(packaging.install PROPERTIES RESOURCE_LOCK slurm_cluster PROCESSORS 2 TIMEOUT 600
                                                  LABELS "slurm;packaging")
# packaging.container: the container images' build script (packaging/container/build_in_image.sh) builds
# and installs Mimic from the files the Apptainer definition copies (a full Release build, no tests).
mimic_script_test(packaging.container packaging/container.sh ${PROJECT_BINARY_DIR} "${CMAKE_CXX_COMPILER_LAUNCHER}")
set_tests_properties(packaging.container PROPERTIES PROCESSORS 2 TIMEOUT 900 LABELS packaging)
# packaging.spack: the Spack recipe parses, declares the variants and dependencies, passes only -D names the
# project declares and maps its options; its test-phase pipeline runs against this build's mimic.
add_test(NAME packaging.spack COMMAND ${MIMIC_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/packaging/spack.py
                                      ${PROJECT_SOURCE_DIR} WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(packaging.spack PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV}" LABELS packaging)
