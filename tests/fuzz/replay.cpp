// Replays fuzz corpora through the fuzz targets with the normal build (no libFuzzer needed), so that
// every seed and every crash found earlier stays a regression test: fuzz_replay TARGET FILE|DIR...
#include "targets.hpp"

#include "mimic/core/runtime.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

void collect(const std::string& path, std::vector<std::string>& files) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        files.push_back(path);
        return;
    }
    DIR* dir = opendir(path.c_str());
    if (!dir) return;
    std::vector<std::string> names;
    while (dirent* e = readdir(dir))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const auto& n : names)
        collect(path + "/" + n, files);
}

} // namespace

int main(int argc, char** argv) {
    mimic::Runtime runtime(argc, argv);
    if (argc < 3) {
        std::fprintf(stderr, "usage: fuzz_replay TARGET FILE|DIR... (targets: %s)\n",
                     mimic::fuzz::target_names());
        return 2;
    }
    const std::string target = argv[1];
    std::vector<std::string> files;
    for (int i = 2; i < argc; ++i)
        collect(argv[i], files);
    if (files.empty()) {
        std::fprintf(stderr, "fuzz_replay: no corpus files under the given paths\n");
        return 2;
    }
    const bool verbose = std::getenv("MIMIC_FUZZ_VERBOSE") != nullptr;
    for (const auto& f : files) {
        if (verbose) std::fprintf(stderr, "input: %s\n", f.c_str()); // names the input a crash came from
        std::ifstream in(f, std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!mimic::fuzz::run_one(target, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                  bytes.size())) {
            std::fprintf(stderr, "fuzz_replay: unknown target '%s' (targets: %s)\n", target.c_str(),
                         mimic::fuzz::target_names());
            return 2;
        }
    }
    std::printf("fuzz_replay %s: %zu inputs replayed without a finding\n", target.c_str(), files.size());
    return 0;
}
