// The main() of a fuzz target in the ordinary (g++) build: replays the
// files and directories named on the command line through
// LLVMFuzzerTestOneInput, so ctest re-runs every seed and every committed
// regression input without clang. (Under -DSTACKSTREAM_FUZZ=ON libFuzzer
// provides main() instead.)
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

int RunPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: %s: no such file\n", path.c_str());
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return -1;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    closedir(d);
    int n = 0;
    for (const std::string& name : names) {
      int r = RunPath(name);
      if (r < 0) return r;
      n += r;
    }
    return n;
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  int total = 0;
  for (int i = 1; i < argc; ++i) {
    int n = RunPath(argv[i]);
    if (n < 0) return 2;
    total += n;
  }
  std::printf("replay: %d inputs ran without a crash\n", total);
  return total > 0 ? 0 : 1;
}
