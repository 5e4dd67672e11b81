# Parallel building blocks (issue: distillation across replicas): the bucketed gradient allreduce.
mimic_gtest(test_parallel SOURCES parallel/test_parallel.cpp RANKS 1 2 4)
# The same tests, and the distillation tests (sharded partial logits, replica gradients), through the host
# staging a GPU build without GPU-aware MPI uses (MIMIC_HOST_STAGED_MPI=1), at 2 ranks.
foreach(t test_parallel test_distill)
  add_test(NAME ${t}.host_staged.np2
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${t}>
                   ${MPIEXEC_POSTFLAGS}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${t}.host_staged.np2 PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV};MIMIC_HOST_STAGED_MPI=1"
                                                       PROCESSORS 2)
endforeach()
# par::Comm's typed collectives (allreduce of arrays, broadcast, gatherv, split_shared, dup, self).
mimic_gtest(test_parallel_collectives SOURCES parallel/test_collectives.cpp RANKS 1 2 4)
