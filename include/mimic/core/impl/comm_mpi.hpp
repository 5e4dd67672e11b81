// The MPI side of Comm's typed collectives: the MPI datatype of each element type they accept and the
// MPI operation of each ReduceOp. Only core, parallel and io include this (tests/layering.sh).
#pragma once

#include <mpi.h>

#include <type_traits>

namespace mimic::par {

/// Element-wise operations of Comm::allreduce.
enum class ReduceOp { sum, min, max };

namespace impl {

/// The MPI datatype of T: float, double, int, long and long long (std::int64_t is one of the last two).
template <class T>
struct MpiType : std::false_type {};
template <>
struct MpiType<float> : std::true_type {
    static MPI_Datatype get() { return MPI_FLOAT; }
};
template <>
struct MpiType<double> : std::true_type {
    static MPI_Datatype get() { return MPI_DOUBLE; }
};
template <>
struct MpiType<int> : std::true_type {
    static MPI_Datatype get() { return MPI_INT; }
};
template <>
struct MpiType<long> : std::true_type {
    static MPI_Datatype get() { return MPI_LONG; }
};
template <>
struct MpiType<long long> : std::true_type {
    static MPI_Datatype get() { return MPI_LONG_LONG; }
};

inline MPI_Op mpi_op(ReduceOp op) {
    switch (op) {
    case ReduceOp::min:
        return MPI_MIN;
    case ReduceOp::max:
        return MPI_MAX;
    default:
        return MPI_SUM;
    }
}

} // namespace impl
} // namespace mimic::par
