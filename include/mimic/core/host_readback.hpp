// HostReadback: reads a device matrix (a batch's logits) back to the host through one buffer that grows
// only when a larger matrix comes, so a loop over batches allocates nothing per batch on a GPU build.
#pragma once

#include "mimic/core/kokkos.hpp"

#include <cstddef>
#include <string>
#include <utility>

namespace mimic {

/// A host view of a row-major float matrix that does not own its memory.
using HostMatrixView =
    Kokkos::View<float**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

/// Keep one per loop, outside it. Where the device memory is host-accessible (Serial, OpenMP) `read` returns
/// a view of the matrix itself and copies nothing.
class HostReadback {
public:
    explicit HostReadback(std::string label) : label_(std::move(label)) {}

    /// A host view of `z`, valid until the next `read` on this object and while `z` lives. A Matrix (and a
    /// subview of whole rows of one) is contiguous: LayoutRight without padding.
    HostMatrixView read(const Matrix& z) {
        static_assert(Matrix::rank == 2, "HostReadback reads rank-2 matrices");
        const size_t rows = z.extent(0), cols = z.extent(1);
        if constexpr (Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible) {
            return HostMatrixView(z.data(), rows, cols);
        } else {
            if (buffer_.extent(0) < rows * cols)
                buffer_ = HostVector(Kokkos::view_alloc(Kokkos::WithoutInitializing, label_), rows * cols);
            HostMatrixView h(buffer_.data(), rows, cols);
            Kokkos::deep_copy(h, z);
            return h;
        }
    }

private:
    std::string label_;
    HostVector buffer_;
};

} // namespace mimic
