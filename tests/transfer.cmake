# Transfer-set tests: neighbours, determinism over rank counts, MUNGE and augmentation statistics (C++),
# and the real `mimic transfer` CLI on small synthetic files: a 2-rank run and one test per bad input.
mimic_gtest(test_transfer SOURCES transfer/test_transfer.cpp RANKS 1 2 4)

add_executable(transfer_fixture transfer/transfer_fixture.cpp)
target_link_libraries(transfer_fixture PRIVATE mimic_lib)
set(MIMIC_TRANSFER_TEST_ENV "TRANSFER_FIXTURE=$<TARGET_FILE:transfer_fixture>")

mimic_script_test(transfer.cli.np2 transfer/cli.sh run)
set_tests_properties(transfer.cli.np2 PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV};${MIMIC_TRANSFER_TEST_ENV}")
foreach(case empty_source different_d size_too_small munge_p_range munge_s_range existing_output no_generator)
  mimic_script_test(transfer.cli.bad.${case} transfer/cli.sh ${case})
  set_tests_properties(transfer.cli.bad.${case} PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV};${MIMIC_TRANSFER_TEST_ENV}")
endforeach()
