// Same-file detection for outputs versus inputs, and the per-output advisory lock (flock on OUT.lock).
// Both run before any output is opened, so a refused command has touched nothing.
#include "mimic/io/paths.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/io/hdf5.hpp"
#include "mimic/io/manifest.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

namespace mimic::io {

namespace {

/// The canonical form of a path whose last component may not exist: realpath of the parent + the name.
std::string canonical(const std::string& path) {
    char buf[PATH_MAX];
    if (realpath(path.c_str(), buf)) return buf;
    std::string dir = ".", name = path;
    const auto slash = path.find_last_of('/');
    if (slash != std::string::npos) {
        dir = slash == 0 ? "/" : path.substr(0, slash);
        name = path.substr(slash + 1);
    }
    if (name.empty() || name == "." || name == "..") return path;
    if (!realpath(dir.c_str(), buf)) return path;
    const std::string parent = buf;
    return parent == "/" ? "/" + name : parent + "/" + name;
}

} // namespace

bool same_file(const std::string& a, const std::string& b) {
    if (a.empty() || b.empty()) return false;
    struct stat sa {
    }, sb{};
    if (stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return canonical(a) == canonical(b);
}

void refuse_output_over_inputs(const std::string& out, const std::vector<std::string>& inputs) {
    if (out.empty()) return;
    const std::string written[] = {out, out + ".partial", out + ".ckpt", out + ".ckpt.partial",
                                   out + ".lock"};
    for (const auto& in : inputs) {
        for (const auto& w : written) {
            if (!same_file(w, in)) continue;
            if (w == out)
                fail(out, ": the output is the input file ", in,
                     "; choose another output (an input is never overwritten, even with --overwrite)");
            fail(out, ": writing it would replace the input file ", in, " (through ", w,
                 "); choose another output");
        }
    }
}

namespace {

/// flock(LOCK_EX) without blocking, retried for MIMIC_LOCK_WAIT seconds (default 5): the ranks of a job
/// that was just killed (mpirun -9, a preempted SLURM job requeued at once) can outlive their launcher by a
/// moment and still hold the lock. False with errno set when the lock stays taken or flock is unsupported.
bool lock_with_grace(int fd) {
    const double wait_s = env_seconds("MIMIC_LOCK_WAIT");
    for (int waited_ms = 0;; waited_ms += 100) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
        if (errno != EWOULDBLOCK || waited_ms >= wait_s * 1000.0) return false;
        ::usleep(100 * 1000);
    }
}

} // namespace

namespace {

/// What this process holds for one output: its locked OUT.lock, and OUT.partial once the stage has
/// created or reopened it (hold_partial): a descriptor with the partial lock, and the file's identity.
struct Held {
    std::string lock;
    int fd = -1;
    int partial_fd = -1;
    dev_t partial_dev = 0;
    ino_t partial_ino = 0;
};

/// The locks this process holds, by output path.
std::map<std::string, Held>& held_locks() {
    static std::map<std::string, Held> locks;
    return locks;
}

/// The byte of OUT.partial that carries the partial lock: far beyond any HDF5 file's end, so the lock never
/// meets HDF5's own I/O or its flock (open file description locks and flock are independent on Linux).
constexpr off_t kPartialLockByte = off_t(1) << 62;

/// An exclusive open-file-description lock on kPartialLockByte of `fd`, without blocking, retried for
/// MIMIC_LOCK_WAIT seconds as lock_with_grace. False with errno set when another job holds it or the file
/// system has no such locks.
bool lock_partial_with_grace(int fd) {
#ifdef F_OFD_SETLK
    const double wait_s = env_seconds("MIMIC_LOCK_WAIT");
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = kPartialLockByte;
    fl.l_len = 1;
    for (int waited_ms = 0;; waited_ms += 100) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
        if ((errno != EAGAIN && errno != EACCES) || waited_ms >= wait_s * 1000.0) return false;
        ::usleep(100 * 1000);
    }
#else
    (void)fd;
    errno = ENOTSUP;
    return false;
#endif
}

/// True when another live job holds the partial lock of `partial` (a file that may not exist).
bool partial_held_elsewhere(const std::string& partial) {
    const int fd = ::open(partial.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    const bool taken = !lock_partial_with_grace(fd) && (errno == EAGAIN || errno == EACCES);
    ::close(fd); // closing the probe releases its lock
    return taken;
}

} // namespace

void check_output_lock(const std::string& out) {
    const auto it = held_locks().find(out);
    if (it == held_locks().end()) return;
    const std::string& lock = it->second.lock;
    struct stat held {
    }, named{};
    if (fstat(it->second.fd, &held) != 0 || stat(lock.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev)
        fail(out, ": its lock file ", lock,
             " was removed or replaced while this job ran, so another job may be "
             "writing the same output; the finished file is not moved into place (rerun once no other job "
             "writes ",
             out, ")");
    if (it->second.partial_fd < 0) return;
    const std::string partial = out + ".partial";
    if (stat(partial.c_str(), &named) != 0 || named.st_ino != it->second.partial_ino ||
        named.st_dev != it->second.partial_dev)
        fail(partial,
             ": the partial file was removed or replaced while this job ran, so another job may be "
             "writing the same output; nothing is moved onto ",
             out, " and ", partial, " is left as it is");
}

void hold_partial(const std::string& out) {
    const auto it = held_locks().find(out);
    if (it == held_locks().end()) return; // not locked (no flock on this file system): nothing to hold
    Held& h = it->second;
    if (h.partial_fd >= 0) ::close(h.partial_fd);
    h.partial_fd = ::open((out + ".partial").c_str(), O_RDWR | O_CLOEXEC);
    struct stat st {};
    if (h.partial_fd < 0 || fstat(h.partial_fd, &st) != 0) {
        if (h.partial_fd >= 0) ::close(h.partial_fd);
        h.partial_fd = -1;
        return;
    }
    h.partial_dev = st.st_dev;
    h.partial_ino = st.st_ino;
    // Without the lock (a file system with no such locks) the identity check before the rename still holds.
    lock_partial_with_grace(h.partial_fd);
}

bool partial_replaced(const std::string& out) {
    const auto it = held_locks().find(out);
    if (it == held_locks().end() || it->second.partial_fd < 0) return false;
    struct stat named {};
    return stat((out + ".partial").c_str(), &named) != 0 || named.st_ino != it->second.partial_ino ||
           named.st_dev != it->second.partial_dev;
}

namespace {

/// mkdir -p that returns the directories it made, outermost first (stops at the first it cannot make).
std::vector<std::string> make_missing_dirs(const std::string& dir) {
    std::vector<std::string> made;
    struct stat st {};
    for (size_t pos = 0; pos != std::string::npos;) {
        pos = dir.find('/', pos + 1);
        const std::string cur = dir.substr(0, pos);
        if (cur.empty() || stat(cur.c_str(), &st) == 0) continue;
        if (mkdir(cur.c_str(), 0777) != 0) break;
        made.push_back(cur);
    }
    return made;
}

} // namespace

std::string OutputLock::take(const std::string& path, const std::string& out) {
    // Retry when the file was replaced between open and flock (its owner removed it on exit).
    for (int attempt = 0; attempt < 5; ++attempt) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        // No directory yet: made now, so that the lock holds from the start (a fresh --out-dir too); the
        // directories made here are removed again on release if they are still empty.
        if (fd_ < 0 && errno == ENOENT && made_dirs_.empty()) {
            made_dirs_ = make_missing_dirs(h5::parent_dir(path));
            fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        }
        // Not writable: nothing can be writing there; the stage reports the problem.
        if (fd_ < 0) return "";
        if (!lock_with_grace(fd_)) {
            const int err = errno;
            if (err != EWOULDBLOCK) return ""; // no flock on this file system: go on unlocked
            char owner[256] = {0};
            const ssize_t n = pread(fd_, owner, sizeof owner - 1, 0);
            std::string who = n > 0 ? std::string(owner, size_t(n)) : std::string("another process");
            while (!who.empty() && (who.back() == '\n' || who.back() == ' '))
                who.pop_back();
            ::close(fd_);
            fd_ = -1;
            return out + ": another live job is writing this output (" + who + " holds " + path +
                   "); wait for it to end or choose another output";
        }
        struct stat held {
        }, named{};
        if (fstat(fd_, &held) == 0 && stat(path.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
            held.st_dev == named.st_dev) {
            // A live job whose OUT.lock was deleted still holds its partial file: refused as well.
            const std::string partial = out + ".partial";
            if (partial_held_elsewhere(partial)) {
                ::unlink(path.c_str()); // the lock file this job just made; the output stays the other's
                ::close(fd_);
                fd_ = -1;
                return out + ": another live job is writing this output (it holds " + partial +
                       ", although its lock file " + path +
                       " was removed); wait for it to end or choose "
                       "another output";
            }
            path_ = path;
            char host[256] = {0};
            gethostname(host, sizeof host - 1);
            const std::string me = std::string("host ") + host + ", pid " + std::to_string(getpid()) + "\n";
            if (ftruncate(fd_, 0) != 0 || pwrite(fd_, me.data(), me.size(), 0) < 0) {
                // The owner line is informative only; the lock itself is what matters.
            }
            out_ = out;
            held_locks()[out] = Held{path, fd_};
            return "";
        }
        ::close(fd_);
        fd_ = -1;
    }
    return path + ": the lock file keeps changing; another job is starting on this output";
}

std::string human_bytes(double bytes) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    while (bytes >= 1000 && u < 6) {
        bytes /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

void require_space(const std::string& out, double bytes, const std::string& what) {
    const std::string dir = h5::parent_dir(out);
    struct statvfs v {};
    if (statvfs(dir.c_str(), &v) != 0) return; // no directory yet: the stage reports it when creating
    const double free_bytes = double(v.f_bavail) * double(v.f_frsize);
    if (bytes > free_bytes)
        fail(what, ": ", out, " would need ", human_bytes(bytes), " but ", dir, " has ",
             human_bytes(free_bytes), " free");
}

namespace {

/// The paths of a manifest's members (none when it is not a readable manifest).
std::vector<std::string> member_paths(const std::string& path) {
    std::vector<std::string> out;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || H5Fis_hdf5(path.c_str()) <= 0) return out;
    try {
        const Manifest m = read_manifest(path);
        for (std::size_t i = 0; i < m.members.size(); ++i)
            out.push_back(m.member_path(i));
    } catch (const Error&) {
        // Not a manifest (a dataset or model file): it has no members.
    }
    return out;
}

/// True when `path` ends with `suffix`.
bool ends_with(const std::string& path, const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Fails for an output that is a directory, or that is named like one of the files Mimic writes beside an
/// output (OUT.partial, OUT.lock; and OUT.ckpt for the main output): another job's sibling could be it.
void refuse_unusable_output(const std::string& out, bool main_output) {
    if (out.empty()) return;
    struct stat st {};
    if (stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        fail(out, ": the output is a directory; name a file (--overwrite never replaces a directory)");
    for (const char* sibling : {".partial", ".lock", ".ckpt"}) {
        if (!main_output && std::string(sibling) == ".ckpt") continue;
        if (ends_with(out, sibling))
            fail(out, ": an output may not end in '", sibling,
                 "', the name Mimic gives the files it writes beside an output; choose another name");
    }
}

std::string check_outputs(const std::vector<std::string>& outputs, std::vector<std::string> inputs) {
    const std::size_t given = inputs.size();
    for (std::size_t i = 0; i < given; ++i)
        for (auto& p : member_paths(inputs[i]))
            inputs.push_back(std::move(p));
    try {
        for (std::size_t i = 0; i < outputs.size(); ++i) {
            refuse_unusable_output(outputs[i], i == 0);
            refuse_output_over_inputs(outputs[i], inputs);
            for (std::size_t j = 0; j < i; ++j)
                if (same_file(outputs[i], outputs[j]))
                    fail(outputs[i], ": given as two different outputs; choose distinct files");
        }
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

void raise_on_every_rank(std::string problem, MPI_Comm comm) {
    int rank = 0, size = 1, world = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (size > 1) {
        long long n = static_cast<long long>(problem.size());
        MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm);
        problem.resize(size_t(n));
        if (n > 0) MPI_Bcast(problem.data(), int(n), MPI_CHAR, 0, comm);
    }
    if (!problem.empty()) throw CollectiveError(problem, size == world, rank == 0);
}

} // namespace

OutputLock claim_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs,
                         MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    raise_on_every_rank(rank == 0 ? check_outputs(outputs, inputs) : std::string(), comm);
    for (const auto& out : outputs)
        if (!out.empty()) return OutputLock(out, comm);
    return OutputLock();
}

OutputLock::OutputLock(const std::string& out, MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    raise_on_every_rank(rank == 0 ? take(out + ".lock", out) : std::string(), comm);
}

void OutputLock::release() {
    if (fd_ < 0) return;
    const auto it = held_locks().find(out_);
    if (it != held_locks().end()) {
        if (it->second.partial_fd >= 0) ::close(it->second.partial_fd);
        held_locks().erase(it);
    }
    // Removed while still held, so a job that opened the old file meanwhile sees it replaced and retries;
    // only when it is still this lock's file (a replaced one belongs to another job).
    struct stat held {
    }, named{};
    if (!path_.empty() && fstat(fd_, &held) == 0 && stat(path_.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev)
        ::unlink(path_.c_str());
    ::close(fd_); // closing the descriptor releases the flock
    fd_ = -1;
    for (auto it = made_dirs_.rbegin(); it != made_dirs_.rend(); ++it)
        ::rmdir(it->c_str()); // only an empty one goes: a job that wrote its output keeps it
    made_dirs_.clear();
}

OutputLock::~OutputLock() {
    release();
}

OutputLock::OutputLock(OutputLock&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)), out_(std::move(o.out_)),
      made_dirs_(std::move(o.made_dirs_)) {}

OutputLock& OutputLock::operator=(OutputLock&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = std::exchange(o.fd_, -1);
        path_ = std::move(o.path_);
        out_ = std::move(o.out_);
        made_dirs_ = std::move(o.made_dirs_);
    }
    return *this;
}

} // namespace mimic::io
