# Ensemble and labelling CLI tests on real Fashion-MNIST (issues: teacher ensembles, labelling at scale).
mimic_gtest(test_manifest SOURCES ensemble/test_manifest.cpp RANKS 1 2)
mimic_script_test(cli.pipeline.fixture cli/pipeline_fixture.sh)
set_tests_properties(cli.pipeline.fixture PROPERTIES FIXTURES_SETUP pipeline)
foreach(t label_kill_resume label_disk_full ensemble_kill_resume compare_info io_hints)
  mimic_script_test(cli.${t} cli/${t}.sh)
  set_tests_properties(cli.${t} PROPERTIES FIXTURES_REQUIRED pipeline)
endforeach()
