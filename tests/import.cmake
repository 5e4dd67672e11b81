# `mimic data import` of every source format (issue: bring your own data): each format on 1 and 2 ranks
# against the IDX import's fingerprints and the source pixels, and one refusal per malformed source.
foreach(np 1 2)
  mimic_script_test(cli.import.formats.np${np} cli/import_formats.sh ${np})
endforeach()
foreach(case truncated_npy object_npy corrupt_npz truncated_npz ragged_h5 mixed_sizes
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
# Sources as real producers write them (tests/python/import_producers.py): each imports exactly (the same
# files on 1 and 2 ranks) or is refused in one line naming the file, with nothing written.
foreach(case be_f4 be_u2 i16_negative i32 f64_fraction bool labels_int64 labels_int32 labels_uint8 labels_int8
             labels_float labels_n1 labels_be_i8 labels_fraction labels_strings memmap fortran fortran_flat_be fortran_npz
             zero_rows_train
             zero_rows_test npz_compressed npz_missing_key h5_gzip h5_nchw_relative h5_nan h5_group
             h5_scalar_labels h5_missing h5_lzf h5_bool h5_string_labels img_L img_LA img_RGBA img_P img_P_transparent img_I16
             img_jpeg_progressive img_jpeg_cmyk img_mixed_grey_rgb img_P_mixed_transparency img_clutter
             img_empty_class cifar100_fine cifar100_truncated)
  mimic_script_test(cli.import.producers.${case} cli/import_producers.sh ${case})
  set_tests_properties(cli.import.producers.${case} PROPERTIES PROCESSORS 2)
endforeach()
