// A thin MPI communicator handle (rank, size, owned or borrowed) plus the collective helpers
// every stage uses: agree() turns an error on any rank into the same error on every rank.
// The layers above core, parallel and io reach MPI only through this (tests/layering.sh).
#pragma once

#include "mimic/core/error.hpp"
#include "mimic/core/impl/comm_mpi.hpp"

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mimic::par {

class Comm {
public:
    /// Borrows MPI_COMM_WORLD.
    Comm();
    /// Borrows (owned = false) or takes ownership of (owned = true) an MPI communicator.
    Comm(MPI_Comm comm, bool owned);
    Comm(const Comm&) = delete;
    Comm& operator=(const Comm&) = delete;
    Comm(Comm&& o) noexcept;
    Comm& operator=(Comm&& o) noexcept;
    ~Comm();

    MPI_Comm get() const { return comm_; }
    int rank() const { return rank_; }
    int size() const { return size_; }
    bool is_root() const { return rank_ == 0; }

    /// A borrowed communicator of this rank alone (MPI_COMM_SELF).
    static Comm self();
    /// MPI_Comm_split into a new owned communicator.
    Comm split(int color, int key) const;
    /// The ranks that share this rank's node (memory), in rank order, as a new owned communicator.
    Comm split_shared() const;
    /// A new owned duplicate: the same ranks, its own message space (e.g. for a helper thread's I/O).
    Comm dup() const;
    void barrier() const;

    /// Sum / max / min over the communicator.
    double sum(double v) const;
    double max(double v) const;
    double min(double v) const;
    std::uint64_t sum_u64(std::uint64_t v) const;
    long long sum_ll(long long v) const;
    /// Logical OR / AND of a flag over the communicator.
    bool any(bool v) const;
    bool all(bool v) const;
    /// Broadcasts a string from root.
    std::string bcast(const std::string& s, int root = 0) const;

    /// In-place element-wise reduction of data[0, n) over the communicator; every rank gets the result.
    /// T: float, double, int, long or long long (so std::int64_t).
    template <class T>
    void allreduce(T* data, std::int64_t n, ReduceOp op) const {
        static_assert(impl::MpiType<T>::value, "Comm::allreduce: no MPI datatype for this element type");
        allreduce_raw(data, n, impl::MpiType<T>::get(), op);
    }
    template <class T>
    void allreduce(std::vector<T>& v, ReduceOp op) const {
        allreduce(v.data(), std::int64_t(v.size()), op);
    }
    /// Copies data[0, n) of rank root to every rank.
    template <class T>
    void broadcast(T* data, std::int64_t n, int root = 0) const {
        static_assert(impl::MpiType<T>::value, "Comm::broadcast: no MPI datatype for this element type");
        broadcast_raw(data, n, impl::MpiType<T>::get(), root);
    }
    /// Gathers send[0, n) of every rank into recv on rank root, rank after rank: rank k's values start at
    /// counts[0] + ... + counts[k - 1]. counts (one per rank, counts[k] = rank k's n) and recv are read on
    /// root only.
    template <class T>
    void gatherv(const T* send, std::int64_t n, T* recv, const std::vector<std::int64_t>& counts,
                 int root = 0) const {
        static_assert(impl::MpiType<T>::value, "Comm::gatherv: no MPI datatype for this element type");
        gatherv_raw(send, n, recv, counts, impl::MpiType<T>::get(), root);
    }

private:
    void allreduce_raw(void* data, std::int64_t n, MPI_Datatype type, ReduceOp op) const;
    void broadcast_raw(void* data, std::int64_t n, MPI_Datatype type, int root) const;
    void gatherv_raw(const void* send, std::int64_t n, void* recv, const std::vector<std::int64_t>& counts,
                     MPI_Datatype type, int root) const;

    MPI_Comm comm_ = MPI_COMM_NULL;
    bool owned_ = false;
    int rank_ = 0;
    int size_ = 1;
};

/// True when MPI runs with MPI_THREAD_MULTIPLE, so that a helper thread may call MPI (and HDF5's MPI-IO)
/// while the main thread does too.
bool mpi_thread_multiple();

/// Runs fn on every rank. If it throws on any rank, every rank throws a CollectiveError carrying the
/// message of the lowest failing rank, so that all ranks leave the phase together and none hangs.
void agree(const Comm& comm, const std::function<void()>& fn);

/// The CollectiveError for an error that every rank of `comm` raised alike: whether it spans the whole
/// job and which rank reports it are filled in (throw par::collective_error(comm, msg)).
CollectiveError collective_error(const Comm& comm, const std::string& what);

/// Rows [begin, end) of part `part` when n rows are split into `parts` nearly equal contiguous parts.
struct Range {
    std::int64_t begin = 0;
    std::int64_t end = 0;
    std::int64_t size() const { return end - begin; }
};
Range split_range(std::int64_t n, int parts, int part);

} // namespace mimic::par
