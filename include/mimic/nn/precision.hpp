// GEMM precision of the whole process: fp32 (default, IEEE single precision everywhere) or tf32 (cuBLAS
// TF32 tensor-op math for the GEMMs of a CUDA build; refused on host backends).
#pragma once

#include <string>

namespace mimic::nn {

enum class Precision { fp32, tf32 };

/// "fp32" or "tf32"; anything else is an error naming --precision.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

/// True when this build can run the GEMMs in TF32 (CUDA execution space with cuBLAS).
bool tf32_available();

/// Sets the math mode of the cuBLAS handle Kokkos Kernels' gemm uses. Call after Kokkos is initialised.
/// tf32 on a build without cuBLAS is an error naming the backend.
void set_precision(Precision p);
/// The precision last set (fp32 until set_precision is called).
Precision precision();

} // namespace mimic::nn
