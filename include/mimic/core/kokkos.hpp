// Kokkos vocabulary shared by every module: execution/memory spaces, View aliases for float tensors,
// and math functions that resolve to Kokkos::Experimental (3.4) or Kokkos:: (4.x).
#pragma once

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace mimic {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;
using HostSpace = Kokkos::HostSpace;

/// Row-major float tensors on the compute device: [rows, cols] and flat vectors.
using Matrix = Kokkos::View<float**, Kokkos::LayoutRight, MemSpace>;
using Vector = Kokkos::View<float*, Kokkos::LayoutRight, MemSpace>;
using IntVector = Kokkos::View<int*, Kokkos::LayoutRight, MemSpace>;
using HostMatrix = Kokkos::View<float**, Kokkos::LayoutRight, HostSpace>;
using HostVector = Kokkos::View<float*, Kokkos::LayoutRight, HostSpace>;
using HostIntVector = Kokkos::View<int*, Kokkos::LayoutRight, HostSpace>;
/// An unmanaged view into a flat parameter buffer.
using UnmanagedMatrix =
    Kokkos::View<float**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using UnmanagedVector =
    Kokkos::View<float*, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

using RangePolicy = Kokkos::RangePolicy<ExecSpace>;
using MDPolicy2 = Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>>;

/// A short description of the Kokkos build: version and default execution space.
inline const char* kokkos_backend_name() {
    return ExecSpace::name();
}

namespace kmath {
#if KOKKOS_VERSION >= 40000
using Kokkos::cos;
using Kokkos::erf;
using Kokkos::exp;
using Kokkos::expm1;
using Kokkos::fabs;
using Kokkos::log;
using Kokkos::log1p;
using Kokkos::sin;
using Kokkos::sqrt;
using Kokkos::tanh;
#else
using Kokkos::Experimental::cos;
using Kokkos::Experimental::erf;
using Kokkos::Experimental::exp;
using Kokkos::Experimental::expm1;
using Kokkos::Experimental::fabs;
using Kokkos::Experimental::log;
using Kokkos::Experimental::log1p;
using Kokkos::Experimental::sin;
using Kokkos::Experimental::sqrt;
using Kokkos::Experimental::tanh;
#endif
/// Finite check that works in device code and under fast-math-free builds.
KOKKOS_INLINE_FUNCTION bool isfinite(float x) {
    return x - x == 0.0f;
}
KOKKOS_INLINE_FUNCTION bool isfinite(double x) {
    return x - x == 0.0;
}
} // namespace kmath

} // namespace mimic
