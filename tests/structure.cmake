# Structure guards: the golden outputs and the layering of the sources.
# Golden outputs: seeded train, ensemble train, transfer, label and distill runs must reproduce the
# recorded content digests of their output files bit for bit (tests/golden/digests.<profile>.txt, one per
# CPU arithmetic: run.sh says which a CPU checks; a CPU with none of them skips).
mimic_script_test(golden.outputs golden/run.sh)
set_tests_properties(golden.outputs PROPERTIES TIMEOUT 600 PROCESSORS 2 SKIP_RETURN_CODE 77)

# The layering rule (core -> nn -> io -> train/parallel/transfer -> stages -> cli) read from the includes.
add_test(NAME layering COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/layering.sh ${PROJECT_SOURCE_DIR})
