# `mimic data import` of every source format (issue: bring your own data): each format on 1 and 2 ranks
# against the IDX import's fingerprints and the source pixels, and one refusal per malformed source.
foreach(np 1 2)
  mimic_script_test(cli.import.formats.np${np} cli/import_formats.sh ${np})
endforeach()
foreach(case truncated_npy object_npy fortran_npy corrupt_npz truncated_npz ragged_h5 mixed_sizes
             mixed_channels class_mismatch label_count float_labels negative_labels nan_float nan_half missing_layout norm_from_shape
             truncated_cifar labels_given_twice huge_block not_a_source)
  mimic_script_test(cli.import.refuse.${case} cli/import_refusals.sh ${case})
endforeach()
# A rank killed mid-import: nothing looks finished, and the rerun resumes to the uninterrupted files.
mimic_script_test(cli.import.kill_resume cli/import_kill_resume.sh)
set_tests_properties(cli.import.kill_resume PROPERTIES PROCESSORS 2)
# --store uint8|fp16|fp32: uint8 files read back as the float32 files bit for bit through every stage.
mimic_script_test(cli.import.store cli/import_store.sh)
set_tests_properties(cli.import.store PROPERTIES PROCESSORS 2)
# --store uint8 of 8-bit sources: the pixels copied unchanged, exact statistics, rows equal to the fp32 import's,
# the same files on 1 and 2 ranks.
foreach(np 1 2)
  mimic_script_test(cli.import.pixels.np${np} cli/import_pixels.sh ${np})
endforeach()
set_tests_properties(cli.import.pixels.np2 PROPERTIES PROCESSORS 2)
