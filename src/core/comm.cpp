// Communicator handle and collective helpers (reductions, string broadcast, agree()).
// agree() is the mechanism that keeps an error on one rank from leaving the others hanging.
#include "mimic/core/comm.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace mimic::par {

Comm::Comm() : Comm(MPI_COMM_WORLD, false) {}

Comm::Comm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MIMIC_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MIMIC_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

Comm::Comm(Comm&& o) noexcept
    : comm_(std::exchange(o.comm_, MPI_COMM_NULL)), owned_(std::exchange(o.owned_, false)), rank_(o.rank_),
      size_(o.size_) {}

Comm& Comm::operator=(Comm&& o) noexcept {
    if (this != &o) {
        if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
        comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
        owned_ = std::exchange(o.owned_, false);
        rank_ = o.rank_;
        size_ = o.size_;
    }
    return *this;
}

Comm::~Comm() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (owned_ && comm_ != MPI_COMM_NULL && !fin) MPI_Comm_free(&comm_);
}

Comm Comm::self() {
    return Comm(MPI_COMM_SELF, false);
}

Comm Comm::split_shared() const {
    MPI_Comm out;
    MIMIC_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &out));
    return Comm(out, true);
}

Comm Comm::dup() const {
    MPI_Comm out;
    MIMIC_MPI_CHECK(MPI_Comm_dup(comm_, &out));
    return Comm(out, true);
}

Comm Comm::split(int color, int key) const {
    MPI_Comm out;
    MIMIC_MPI_CHECK(MPI_Comm_split(comm_, color, key, &out));
    return Comm(out, true);
}

void Comm::barrier() const {
    MIMIC_MPI_CHECK(MPI_Barrier(comm_));
}

double Comm::sum(double v) const {
    double r = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_SUM, comm_));
    return r;
}
double Comm::max(double v) const {
    double r = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm_));
    return r;
}
double Comm::min(double v) const {
    double r = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MIN, comm_));
    return r;
}
std::uint64_t Comm::sum_u64(std::uint64_t v) const {
    std::uint64_t r = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_UINT64_T, MPI_SUM, comm_));
    return r;
}
long long Comm::sum_ll(long long v) const {
    long long r = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_LONG_LONG, MPI_SUM, comm_));
    return r;
}
bool Comm::any(bool v) const {
    int in = v ? 1 : 0, out = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, comm_));
    return out != 0;
}
bool Comm::all(bool v) const {
    int in = v ? 1 : 0, out = 0;
    MIMIC_MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LAND, comm_));
    return out != 0;
}

std::string Comm::bcast(const std::string& s, int root) const {
    long long n = static_cast<long long>(s.size());
    MIMIC_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_));
    std::string out = (rank_ == root) ? s : std::string(static_cast<size_t>(n), '\0');
    if (n > 0) MIMIC_MPI_CHECK(MPI_Bcast(out.data(), static_cast<int>(n), MPI_CHAR, root, comm_));
    return out;
}

namespace {

/// MPI counts are int: collectives over more values go in pieces of at most 2^30 elements.
constexpr std::int64_t kPiece = std::int64_t(1) << 30;

std::int64_t type_bytes(MPI_Datatype type) {
    int bytes = 0;
    MIMIC_MPI_CHECK(MPI_Type_size(type, &bytes));
    return bytes;
}

} // namespace

void Comm::allreduce_raw(void* data, std::int64_t n, MPI_Datatype type, ReduceOp op) const {
    MIMIC_REQUIRE(n >= 0, "Comm::allreduce: negative count ", n);
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    const std::int64_t bytes = type_bytes(type);
    for (std::int64_t off = 0; off < n; off += kPiece) {
        const int cnt = int(std::min(n - off, kPiece));
        MIMIC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off * bytes, cnt, type, impl::mpi_op(op), comm_));
    }
}

void Comm::broadcast_raw(void* data, std::int64_t n, MPI_Datatype type, int root) const {
    MIMIC_REQUIRE(n >= 0, "Comm::broadcast: negative count ", n);
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    const std::int64_t bytes = type_bytes(type);
    for (std::int64_t off = 0; off < n; off += kPiece)
        MIMIC_MPI_CHECK(MPI_Bcast(p + off * bytes, int(std::min(n - off, kPiece)), type, root, comm_));
}

void Comm::gatherv_raw(const void* send, std::int64_t n, void* recv, const std::vector<std::int64_t>& counts,
                       MPI_Datatype type, int root) const {
    MIMIC_REQUIRE(n >= 0 && n <= std::numeric_limits<int>::max(), "Comm::gatherv: count ", n,
                  " is outside [0, 2^31)");
    std::vector<int> cnt, displs;
    if (rank_ == root) {
        MIMIC_REQUIRE(std::int64_t(counts.size()) == size_, "Comm::gatherv: ", counts.size(), " counts for ",
                      size_, " ranks");
        cnt.resize(size_t(size_));
        displs.resize(size_t(size_));
        std::int64_t at = 0;
        for (int k = 0; k < size_; ++k) {
            MIMIC_REQUIRE(counts[size_t(k)] >= 0 && at + counts[size_t(k)] <= std::numeric_limits<int>::max(),
                          "Comm::gatherv: ", at + counts[size_t(k)], " values at the root exceed 2^31 - 1");
            cnt[size_t(k)] = int(counts[size_t(k)]);
            displs[size_t(k)] = int(at);
            at += counts[size_t(k)];
        }
    }
    MIMIC_MPI_CHECK(MPI_Gatherv(send, int(n), type, recv, cnt.data(), displs.data(), type, root, comm_));
}

bool mpi_thread_multiple() {
    int level = MPI_THREAD_SINGLE;
    MIMIC_MPI_CHECK(MPI_Query_thread(&level));
    return level >= MPI_THREAD_MULTIPLE;
}

void agree(const Comm& comm, const std::function<void()>& fn) {
    std::string msg;
    bool failed = false;
    try {
        fn();
    } catch (const std::exception& e) {
        failed = true;
        msg = e.what();
    }
    // Lowest failing rank wins, so the message is the same everywhere.
    int mine = failed ? comm.rank() : comm.size(), first = comm.size();
    // Nonblocking on every rank (a nonblocking collective never matches a blocking one): the others may
    // be blocked in a collective that a failing rank skipped (a file opened after a check that failed
    // there only), so a failing rank waits a bounded time, then ends the job.
    MPI_Request req;
    MIMIC_MPI_CHECK(MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm.get(), &req));
    if (failed && comm.size() > 1) {
        if (!wait_at_most(req, error_wait_seconds())) abort_job(msg);
    } else {
        MIMIC_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
    }
    if (first == comm.size()) return;
    throw collective_error(comm, comm.bcast(msg, first));
}

CollectiveError collective_error(const Comm& comm, const std::string& what) {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    return CollectiveError(what, comm.size() == world, comm.rank() == 0);
}

Range split_range(std::int64_t n, int parts, int part) {
    const std::int64_t base = n / parts, rem = n % parts;
    Range r;
    r.begin = part * base + std::min<std::int64_t>(part, rem);
    r.end = r.begin + base + (part < rem ? 1 : 0);
    return r;
}

} // namespace mimic::par
