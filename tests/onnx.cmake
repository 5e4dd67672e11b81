# ONNX interop tests (issue: import teachers from ONNX, export students to ONNX): PyTorch exports teachers
# with torch.onnx.export, Mimic imports, labels, distils and exports; onnxruntime runs the exported students.
foreach(case import unsupported export ops fold grouped blocks raw pipeline)
  mimic_script_test(onnx.${case} onnx/onnx.sh ${case})
endforeach()
