# Training tests (issue: optimizers, schedules, model files, checkpoints, `mimic train` / `mimic eval`).
mimic_gtest(test_optim SOURCES train/test_optim.cpp)
target_compile_definitions(test_optim PRIVATE MIMIC_TEST_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
mimic_gtest(test_train SOURCES train/test_train.cpp RANKS 1 2)
# Batch normalisation's statistics over the replicas: 1, 2 and 4 ranks (4 with a batch that leaves ranks empty).
mimic_gtest(test_train_bn SOURCES train/test_train_bn.cpp RANKS 1 2 4)
foreach(case fashion_mnist resume_after_kill residual nan_loss arch_mismatch bad_model)
  mimic_script_test(cli.train.${case} train/cli_train.sh ${case})
endforeach()
mimic_script_test(cli.train.resume_identity train/resume_identity.sh)
mimic_script_test(cli.train.engine_options train/engine_options.sh)
# The residual net's rank-count independence on 4 ranks as well (the other tests run on 1 and 2).
add_test(NAME test_train.blocks.np4
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:test_train>
                 --gtest_filter=Trainer.ResidualNet* ${MPIEXEC_POSTFLAGS}
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(test_train.blocks.np4 PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV}" PROCESSORS 4)
