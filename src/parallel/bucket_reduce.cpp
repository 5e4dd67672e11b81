// Bucketed, non-blocking gradient allreduce: the plan of buckets from the layer boundaries, MPI_Iallreduce
// per bucket as backward completes it (through host staging where MPI cannot read device memory), and the
// wait before the optimizer step.
#include "mimic/parallel/bucket_reduce.hpp"

#include "mimic/core/error.hpp"
#include "mimic/parallel/reduce.hpp"

#include <algorithm>
#include <functional>

namespace mimic::par {

BucketedAllreduce::BucketedAllreduce(const Comm& comm, std::int64_t size, std::vector<std::int64_t> cuts,
                                     const std::vector<std::int64_t>& forced, std::int64_t bucket_floats)
    : comm_(comm), size_(size) {
    MIMIC_REQUIRE(bucket_floats > 0, "BucketedAllreduce: bucket size must be > 0, got ", bucket_floats);
    cuts.push_back(0);
    std::sort(cuts.begin(), cuts.end(), std::greater<>());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::int64_t end = size;
    for (std::int64_t c : cuts) {
        if (c >= end || c < 0) continue;
        const bool must = c == 0 || std::find(forced.begin(), forced.end(), c) != forced.end();
        if (must || end - c >= bucket_floats) {
            buckets_.emplace_back(c, end);
            end = c;
        }
    }
}

BucketedAllreduce::~BucketedAllreduce() {
    // Unwinding mid-step: MPI may still write into the buffers, so wait for it (the peers started the same
    // buckets or will, as the reductions are collective).
    if (!requests_.empty()) MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
}

void BucketedAllreduce::start(const Vector& grads) {
    MIMIC_REQUIRE(!active_, "BucketedAllreduce::start: the previous step was not finished");
    MIMIC_REQUIRE(std::int64_t(grads.extent(0)) == size_, "BucketedAllreduce::start: buffer of ",
                  grads.extent(0), " floats, planned for ", size_);
    grads_ = grads;
    next_ = 0;
    active_ = true;
    if (!mpi_reads_views()) host_.resize(size_t(size_));
}

void BucketedAllreduce::start_bucket(std::size_t b) {
    const auto [begin, end] = buckets_[b];
    Kokkos::fence(); // backward's kernels have written the bucket
    float* p = grads_.data() + begin;
    if (!mpi_reads_views()) {
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(host_.data() + begin,
                                                                                   size_t(end - begin));
        Kokkos::deep_copy(h, Kokkos::subview(grads_, std::make_pair(begin, end)));
        p = h.data();
    }
    // MPI counts are int: pieces of at most 2^30 floats.
    for (std::int64_t off = 0; off < end - begin; off += (std::int64_t(1) << 30)) {
        const int cnt = int(std::min<std::int64_t>(end - begin - off, std::int64_t(1) << 30));
        requests_.push_back(MPI_REQUEST_NULL);
        MIMIC_MPI_CHECK(
            MPI_Iallreduce(MPI_IN_PLACE, p + off, cnt, MPI_FLOAT, MPI_SUM, comm_.get(), &requests_.back()));
    }
}

void BucketedAllreduce::ready(std::int64_t begin) {
    MIMIC_REQUIRE(active_, "BucketedAllreduce::ready outside a step");
    while (next_ < buckets_.size() && buckets_[next_].first >= begin)
        start_bucket(next_++);
    int done = 0;
    if (!requests_.empty())
        MIMIC_MPI_CHECK(MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE));
}

void BucketedAllreduce::finish() {
    MIMIC_REQUIRE(active_, "BucketedAllreduce::finish outside a step");
    while (next_ < buckets_.size())
        start_bucket(next_++);
    MIMIC_MPI_CHECK(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    requests_.clear();
    if (!mpi_reads_views()) {
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(host_.data(),
                                                                                   host_.size());
        Kokkos::deep_copy(grads_, h);
    }
    active_ = false;
    grads_ = Vector();
}

} // namespace mimic::par
