// The gradient allreduce overlapped with the backward pass: the flat gradient buffer is cut at layer
// boundaries into buckets, each summed with MPI_Iallreduce as soon as backward has finished its layers.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/kokkos.hpp"

#include <cstdint>
#include <vector>

namespace mimic::par {

/// A bucket size for --bucket-mb 1: 1 MiB of gradients (a CNN's dense layers, finished first, fill the first
/// bucket).
constexpr std::int64_t kBucketFloats = std::int64_t(1) << 18;

/// Sums a flat buffer of `size` floats over `comm` in buckets, from the end of the buffer to its start
/// (the order in which backward finishes layers). Every rank must use the same plan: the buckets, and
/// therefore the sums, depend only on the cut points and the bucket size, never on timing. On 2 ranks
/// each element is a + b whatever the bucketing, so the result equals one blocking MPI_Allreduce bit for
/// bit; on more ranks it may differ from it in float rounding.
class BucketedAllreduce {
public:
    /// cuts: offsets where a bucket may end (layer boundaries, any order); `forced`: offsets where one must
    /// (data not ready at the same time, e.g. the layers whose gradients are also summed over model shards).
    /// Buckets close at the first cut once they hold at least bucket_floats elements.
    BucketedAllreduce(const Comm& comm, std::int64_t size, std::vector<std::int64_t> cuts,
                      const std::vector<std::int64_t>& forced, std::int64_t bucket_floats = kBucketFloats);
    BucketedAllreduce(const BucketedAllreduce&) = delete;
    BucketedAllreduce& operator=(const BucketedAllreduce&) = delete;
    ~BucketedAllreduce();

    /// Starts a step summing `grads` ([size] floats).
    void start(const Vector& grads);
    /// grads [begin, size) are final: starts every bucket inside that range in plan order and lets MPI
    /// advance the sums in flight (Open MPI progresses non-blocking collectives inside MPI calls).
    void ready(std::int64_t begin);
    /// Starts the buckets not started yet and waits for all: grads then hold the sums.
    void finish();
    /// The plan: bucket boundaries [begin, end), in the order they are started.
    const std::vector<std::pair<std::int64_t, std::int64_t>>& buckets() const { return buckets_; }

private:
    void start_bucket(std::size_t b);
    const Comm& comm_;
    std::int64_t size_;
    std::vector<std::pair<std::int64_t, std::int64_t>> buckets_;
    Vector grads_;
    std::vector<float> host_; ///< staging when MPI cannot read the View's memory (kept across steps)
    std::vector<MPI_Request> requests_;
    std::size_t next_ = 0; ///< first bucket not started in this step
    bool active_ = false;
};

} // namespace mimic::par
