// BlockRecord: the /progress datasets of a partial file: created zeroed, read whole, and each block marked
// done only after a flush (pipelined: one flush per commit, every round or every few seconds), so a done
// flag never points at rows that are not on disk.
#include "mimic/io/block_record.hpp"

#include "mimic/core/timer.hpp"

#include <utility>

namespace mimic::io {

namespace {
constexpr const char* kDone = "/progress/done";
constexpr const char* kHash = "/progress/block_hash";
} // namespace

BlockRecord BlockRecord::create(h5::File& file, std::int64_t num_blocks) {
    BlockRecord r;
    r.file_ = &file;
    r.n_ = num_blocks;
    r.last_drain_ = wall_seconds();
    r.done_ds_ = h5::create_dataset(file, kDone, H5T_NATIVE_UCHAR, {hsize_t(num_blocks)});
    r.hash_ds_ = h5::create_dataset(file, kHash, H5T_NATIVE_ULLONG, {hsize_t(num_blocks)});
    const std::int64_t mine = file.rank() == 0 ? num_blocks : 0;
    std::vector<unsigned char> zeros(size_t(mine), 0);
    std::vector<unsigned long long> zh(size_t(mine), 0);
    h5::write_rows(r.done_ds_, H5T_NATIVE_UCHAR, 0, mine, zeros.data(), file.parallel());
    h5::write_rows(r.hash_ds_, H5T_NATIVE_ULLONG, 0, mine, zh.data(), file.parallel());
    return r;
}

BlockRecord BlockRecord::open(h5::File& file) {
    BlockRecord r;
    r.file_ = &file;
    r.last_drain_ = wall_seconds();
    r.done_ds_ = h5::open_dataset(file, kDone);
    r.hash_ds_ = h5::open_dataset(file, kHash);
    r.n_ = std::int64_t(h5::dataset_dims(r.done_ds_.id()).at(0));
    return r;
}

void BlockRecord::read() {
    done_.assign(size_t(n_), 0);
    hash_.assign(size_t(n_), 0);
    h5::read_rows(done_ds_, H5T_NATIVE_UCHAR, 0, n_, done_.data(), file_->parallel());
    h5::read_rows(hash_ds_, H5T_NATIVE_ULLONG, 0, n_, hash_.data(), file_->parallel());
}

void BlockRecord::write_record(const Pending& p) {
    // Independent writes of one value each (collective ones cost four MPI collectives per write here:
    // HDF5's allreduce, two file views and the write itself); the flush that follows is collective.
    if (!p.have) return;
    const unsigned char one = 1;
    h5::write_rows(hash_ds_, H5T_NATIVE_ULLONG, p.k, 1, &p.hash, false);
    h5::write_rows(done_ds_, H5T_NATIVE_UCHAR, p.k, 1, &one, false);
}

void BlockRecord::add(bool have, std::int64_t k, unsigned long long hash) {
    written_.push_back({have, k, hash});
}

void BlockRecord::commit() {
    for (const auto& p : flushed_)
        write_record(p);
    file_->flush();
    recorded_ += std::int64_t(flushed_.size());
    flushed_ = std::move(written_);
    written_.clear();
}

void BlockRecord::drain() {
    while (!written_.empty() || !flushed_.empty())
        commit();
}

bool BlockRecord::flush_due(double flush_seconds, const par::Comm& comm) const {
    return flush_seconds <= 0 || comm.any(wall_seconds() - last_drain_ >= flush_seconds);
}

void BlockRecord::add_and_flush(bool have, std::int64_t k, unsigned long long hash, double flush_seconds,
                                bool due) {
    add(have, k, hash);
    if (flush_seconds <= 0) return commit();
    if (!due) return;
    drain();
    last_drain_ = wall_seconds();
}

void BlockRecord::close() {
    done_ds_.reset();
    hash_ds_.reset();
}

} // namespace mimic::io
