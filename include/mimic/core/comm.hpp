// A thin MPI communicator handle (rank, size, owned or borrowed) plus the collective helpers
// every stage uses: agree() turns an error on any rank into the same error on every rank.
#pragma once

#include "mimic/core/error.hpp"

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

    /// MPI_Comm_split into a new owned communicator.
    Comm split(int color, int key) const;
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

private:
    MPI_Comm comm_ = MPI_COMM_NULL;
    bool owned_ = false;
    int rank_ = 0;
    int size_ = 1;
};

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
