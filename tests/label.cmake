# Labelling tests (issue: ensemble labelling at scale): grid shapes, exactness, resume, bad input.
mimic_gtest(test_label SOURCES label/test_label.cpp RANKS 1 2 4)
