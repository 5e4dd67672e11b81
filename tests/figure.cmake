# The accuracy-against-parameters sweep (jobs/fashion_mnist_figure.sh, jobs/plot_figure.py) in its smoke mode:
# resume of a stopped run, CSV rows, skip on rerun, the PNGs, the table and the bottleneck report.
mimic_script_test(jobs.figure.smoke cli/figure_smoke.sh)
set_tests_properties(jobs.figure.smoke PROPERTIES PROCESSORS 2 TIMEOUT 900)
