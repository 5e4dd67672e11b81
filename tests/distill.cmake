# Distillation tests (issue: students on the ensemble's logits, model-parallel wide layers).
mimic_gtest(test_distill SOURCES distill/test_distill.cpp RANKS 1 2 4)
