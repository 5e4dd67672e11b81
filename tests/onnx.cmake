# ONNX interop tests (issue: import teachers from ONNX, export students to ONNX): PyTorch exports teachers
# with torch.onnx.export, Mimic imports, labels, distils and exports; onnxruntime runs the exported students.
foreach(case import unsupported export ops fold grouped blocks raw input_norm pipeline zoo_small zoo_resnet zoo_mobile zoo_user zoo_more zoo_norm zoo_pipeline)
  mimic_script_test(onnx.${case} onnx/onnx.sh ${case})
endforeach()
# The CNN families of tests/python/zoo_families.py, split in six to keep each case within a few minutes.
set_tests_properties(onnx.zoo_small onnx.zoo_resnet onnx.zoo_mobile onnx.zoo_user onnx.zoo_more onnx.zoo_norm
                     PROPERTIES TIMEOUT 600)
