# SLURM tests (issue: supercomputer runs): the real job scripts under a private single-node SLURM
# (munged, slurmctld, slurmd started and stopped by the test), and preemption at a time limit.
# One cluster at a time (RESOURCE_LOCK); the preemption test reuses the pipeline test's run (fixture).
# slurm.scripts checks the submitter and the GPU binding without daemons.
mimic_script_test(slurm.scripts slurm/scripts.sh)
mimic_script_test(slurm.pipeline slurm/pipeline.sh)
mimic_script_test(slurm.preempt slurm/preempt.sh ${CMAKE_CURRENT_BINARY_DIR}/scratch/slurm.pipeline/run)
set_tests_properties(slurm.scripts PROPERTIES LABELS slurm)
set_tests_properties(slurm.pipeline PROPERTIES FIXTURES_SETUP slurm_run RESOURCE_LOCK slurm_cluster
                                               PROCESSORS 2 TIMEOUT 900 LABELS slurm)
set_tests_properties(slurm.preempt PROPERTIES FIXTURES_REQUIRED slurm_run RESOURCE_LOCK slurm_cluster
                                              TIMEOUT 900 LABELS slurm)
