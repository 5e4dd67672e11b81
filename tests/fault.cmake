# Fault injection through the real CLI (tests/fault/fault.sh): each case must end in one error line and
# a non-zero exit within its timeout, and leave every input unchanged; 77 means skipped here.
foreach(case same_file nonfinite labels shapes full_disk members huge concurrent late_signal leftovers hang options checkpoint finished fingerprints inpass lock lock_stages late_rank)
  mimic_script_test(fault.${case} fault/fault.sh ${case})
  set_tests_properties(fault.${case} PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 PROCESSORS 2)
endforeach()

# The PMPI shim that replays a late rank (fault.late_rank): preloaded into the ranks only.
add_library(late_rank_shim SHARED fault/late_rank_shim.cpp)
target_link_libraries(late_rank_shim PRIVATE MPI::MPI_CXX)
set_tests_properties(fault.late_rank PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV};LATE_RANK_SHIM=$<TARGET_FILE:late_rank_shim>")
