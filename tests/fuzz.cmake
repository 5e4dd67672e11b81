# Fuzz targets (tests/fuzz): the corpus replay runs in every build as a normal test; the libFuzzer
# executables (fuzz_idx, fuzz_npy, fuzz_cifar, fuzz_hdf5, fuzz_spec, fuzz_ini, fuzz_onnx, fuzz_model,
# fuzz_checkpoint) only with -DMIMIC_ENABLE_FUZZ=ON and clang.
option(MIMIC_ENABLE_FUZZ "build the libFuzzer targets (needs clang and -fsanitize=fuzzer-no-link flags)" OFF)
set(MIMIC_FUZZ_TARGETS idx npy cifar hdf5 spec ini onnx model checkpoint)
add_library(mimic_fuzz_targets STATIC ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/targets.cpp
                                      ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/h5_mutate.cpp)
target_link_libraries(mimic_fuzz_targets PUBLIC mimic_lib)
add_executable(fuzz_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay.cpp)
target_link_libraries(fuzz_replay PRIVATE mimic_fuzz_targets)
foreach(t ${MIMIC_FUZZ_TARGETS})
  add_test(NAME fuzz.replay.${t} COMMAND fuzz_replay ${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${t})
  set_tests_properties(fuzz.replay.${t} PROPERTIES ENVIRONMENT "${MIMIC_TEST_ENV}" TIMEOUT 300)
  if(MIMIC_ENABLE_FUZZ)
    add_executable(fuzz_${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/libfuzzer_main.cpp)
    target_compile_definitions(fuzz_${t} PRIVATE MIMIC_FUZZ_TARGET="${t}")
    target_link_libraries(fuzz_${t} PRIVATE mimic_fuzz_targets)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address)
  endif()
endforeach()
