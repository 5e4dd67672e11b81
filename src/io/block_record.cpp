// BlockRecord: the /progress datasets of a partial file: created zeroed, read whole, and each block marked
// done only after a flush, so a done flag never points at rows that are not on disk.
#include "mimic/io/block_record.hpp"

namespace mimic::io {

namespace {
constexpr const char* kDone = "/progress/done";
constexpr const char* kHash = "/progress/block_hash";
} // namespace

BlockRecord BlockRecord::create(h5::File& file, std::int64_t num_blocks) {
    BlockRecord r;
    r.file_ = &file;
    r.n_ = num_blocks;
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

void BlockRecord::mark(bool have, std::int64_t k, unsigned long long hash) {
    file_->flush();
    const unsigned char one = 1;
    const std::int64_t at = have ? k : 0, count = have ? 1 : 0;
    h5::write_rows(hash_ds_, H5T_NATIVE_ULLONG, at, count, &hash, file_->parallel());
    h5::write_rows(done_ds_, H5T_NATIVE_UCHAR, at, count, &one, file_->parallel());
    file_->flush();
}

void BlockRecord::close() {
    done_ds_.reset();
    hash_ds_.reset();
}

} // namespace mimic::io
