// The process-wide GEMM precision: one setting, applied to the cuBLAS handle that Kokkos Kernels' gemm
// uses on CUDA (CUBLAS_TF32_TENSOR_OP_MATH or CUBLAS_DEFAULT_MATH); host builds accept only fp32.
#include "mimic/nn/precision.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/kokkos.hpp"

#include <KokkosKernels_config.h>

#if defined(KOKKOS_ENABLE_CUDA) && defined(KOKKOSKERNELS_ENABLE_TPL_CUBLAS)
#define MIMIC_HAVE_CUBLAS_HANDLE 1
#include <KokkosBlas_tpl_spec.hpp>
#include <cublas_v2.h>
#endif

namespace mimic::nn {

namespace {
Precision current = Precision::fp32;
} // namespace

Precision parse_precision(const std::string& name) {
    if (name == "fp32") return Precision::fp32;
    if (name == "tf32") return Precision::tf32;
    fail("--precision: unknown precision '", name, "' (expected fp32 or tf32)");
}

const char* precision_name(Precision p) {
    return p == Precision::tf32 ? "tf32" : "fp32";
}

bool tf32_available() {
#ifdef MIMIC_HAVE_CUBLAS_HANDLE
    return true;
#else
    return false;
#endif
}

void set_precision(Precision p) {
    MIMIC_REQUIRE(p == Precision::fp32 || tf32_available(), "--precision tf32: TF32 needs a CUDA build with "
                  "cuBLAS, but this build runs on the ", ExecSpace::name(), " backend (use --precision fp32)");
#ifdef MIMIC_HAVE_CUBLAS_HANDLE
    auto& blas = KokkosBlas::Impl::CudaBlasSingleton::singleton();
    const cublasMath_t mode = p == Precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    const cublasStatus_t rc = cublasSetMathMode(blas.handle, mode);
    MIMIC_REQUIRE(rc == CUBLAS_STATUS_SUCCESS, "--precision ", precision_name(p),
                  ": cublasSetMathMode failed with status ", int(rc));
#endif
    current = p;
}

Precision precision() {
    return current;
}

} // namespace mimic::nn
