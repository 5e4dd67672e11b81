// Outputs that can never destroy an input: same-file detection by device and inode (or the canonical
// path when the output does not exist yet), and an advisory lock that keeps two live jobs off one output.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace mimic::io {

/// True when a and b name the same file: same device and inode when both exist, else the same canonical
/// path (the parent directory resolved through symlinks, "." and "..", plus the name).
bool same_file(const std::string& a, const std::string& b);

/// Fails with one line naming both paths when `out`, or one of the files written beside it (OUT.partial,
/// OUT.ckpt, OUT.ckpt.partial, OUT.lock), is the same file as any of `inputs` (empty entries skipped).
/// No option overrides it: an input is never overwritten.
void refuse_output_over_inputs(const std::string& out, const std::vector<std::string>& inputs);

/// Fails, before anything is allocated or written, when `bytes` cannot fit on the file system that will
/// hold `out`: "<what>: <out> would need 2.9 PB but <dir> has 41.2 GB free".
void require_space(const std::string& out, double bytes, const std::string& what);
/// "41.2 GB": a byte count with a decimal unit.
std::string human_bytes(double bytes);

class OutputLock;

/// Before a finished file is renamed onto `out`: when this process holds the lock of `out`, fails unless
/// OUT.lock is still the file it locked and, once hold_partial has run, OUT.partial is still the file
/// (device and inode) it held; the error names the lock or partial file. A file removed or replaced while
/// the job ran means a second job may have taken the output: neither can trust the other's partial file,
/// so nothing is renamed and the replaced file is left as it is. Called by rename_file for every output.
void check_output_lock(const std::string& out);

/// Rank 0, right after OUT.partial of a locked `out` is created or reopened to resume (the long-lived
/// partial files of label, transfer and data import): records its device and inode for check_output_lock
/// and takes the partial lock, an exclusive open-file-description lock (fcntl F_OFD_SETLK) on one byte far
/// beyond the file's end, held until the OutputLock is released. No-op when `out` is not locked here.
void hold_partial(const std::string& out);
/// True when hold_partial recorded OUT.partial and that path now names another file (or none): a writer
/// cleaning up after an error must then leave it alone, since it is not this job's file.
bool partial_replaced(const std::string& out);

/// Collective over `comm` (rank 0 checks, every rank raises the same CollectiveError): refuses any output
/// that is an input (refuse_output_over_inputs) or another of the outputs, then locks outputs[0] for
/// the life of the returned object. Empty entries are skipped. A manifest among the inputs brings its
/// member files with it. Call it first in a stage, before any file is opened.
OutputLock claim_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs,
                         MPI_Comm comm);

/// An advisory lock (flock) on OUT.lock, taken by rank 0 of `comm` and held until destruction, so that a
/// second live job writing the same output (or resuming its partial file) is refused at once. Collective:
/// every rank raises the same CollectiveError when the lock is held elsewhere. The lock file (OUT.lock)
/// holds the owner's host and pid, and is removed when the lock is released (a lock of a killed job is
/// released by the kernel). Missing directories above OUT.lock are made first (and removed on release
/// while still empty). On a file system without flock the job goes on unlocked.
///
/// Deleting a live OUT.lock does not defeat it: after taking OUT.lock, a job also probes the partial lock
/// of an existing OUT.partial (hold_partial) and is refused while another job holds it, and the first job
/// checks both files before its final rename (check_output_lock). Limits: the partial lock covers only
/// while OUT.partial exists (not the moments between the claim and its creation, nor a train or distill
/// run, whose OUT.ckpt is replaced at every checkpoint: there the rename check is the guard); it is local
/// to the host on file systems whose locks are not cluster-wide; and a partial file deleted by hand
/// leaves a second job free to start, after which the first fails at its rename.
class OutputLock {
public:
    OutputLock() = default;
    OutputLock(const std::string& out, MPI_Comm comm);
    ~OutputLock();
    OutputLock(OutputLock&& o) noexcept;
    OutputLock& operator=(OutputLock&& o) noexcept;
    OutputLock(const OutputLock&) = delete;
    OutputLock& operator=(const OutputLock&) = delete;

private:
    std::string take(const std::string& path, const std::string& out);
    void release();

    int fd_ = -1;
    std::string path_;
    std::string out_;                    ///< the output this lock guards
    std::vector<std::string> made_dirs_; ///< directories made to hold OUT.lock, removed on release if empty
};

} // namespace mimic::io
