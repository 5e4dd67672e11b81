# Foundation tests (issue: build, CLI, core, io, data import).
mimic_gtest(test_core SOURCES core/test_core.cpp RANKS 1 2)
mimic_gtest(test_dataset_io SOURCES io/test_dataset_io.cpp RANKS 1 2 4)
mimic_script_test(cli.basics cli/basics.sh)
mimic_script_test(cli.steps cli/steps.sh)
mimic_script_test(cli.import.fashion_mnist.np2 cli/import_fashion_mnist.sh 2)
foreach(case missing_file wrong_magic truncated count_mismatch unwritable_output)
  mimic_script_test(cli.import.bad.${case} cli/import_bad_input.sh ${case})
endforeach()
