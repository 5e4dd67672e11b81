# Parallel building blocks (issue: distillation across replicas): the bucketed gradient allreduce.
mimic_gtest(test_parallel SOURCES parallel/test_parallel.cpp RANKS 1 2 4)
