// Symbolizer on a library with known functions (built with -g), an
// always_inline function, and a stripped copy of the same library; the
// modules described the way the host describes them (capture::ScanModules ->
// ModuleMessage -> ModuleSet) and symbolized from the module FILES: also
// after dlclose, after the process exited, at another load bias (shared
// cache), and with a build-id that does not match the file.
#include "pipeline/symbolizer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "capture/module_scan.h"
#include "test_lib.h"
#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The modules loaded now, as the host sends them (raw kModule messages).
std::vector<std::string> ScanMessages() {
  std::vector<std::string> messages;
  capture::ScanModules(
      1,
      [](const capture::ModuleMessage& m, const char* path, void* arg) {
        std::string raw(reinterpret_cast<const char*>(&m), sizeof m);
        raw.append(path);
        raw.push_back('\0');
        static_cast<std::vector<std::string>*>(arg)->push_back(raw);
      },
      &messages);
  return messages;
}

std::shared_ptr<const ModuleSet> ScanSet() {
  int rejected = -1;
  auto set = ModuleSet::FromMessages(ScanMessages(), "", &rejected);
  EXPECT_EQ(0, rejected);
  return set;
}

std::string PathOf(const std::string& raw) { return raw.c_str() + sizeof(capture::ModuleMessage); }

// The raw message of the module at "path" in "messages".
std::string MessageOf(const std::vector<std::string>& messages, const std::string& path) {
  for (const std::string& m : messages) {
    if (PathOf(m) == path) return m;
  }
  ADD_FAILURE() << "no module " << path;
  return "";
}

capture::ModuleMessage Header(const std::string& raw) {
  capture::ModuleMessage m;
  memcpy(&m, raw.data(), sizeof m);
  return m;
}

std::string WithHeader(std::string raw, const capture::ModuleMessage& m) {
  memcpy(&raw[0], &m, sizeof m);
  return raw;
}

std::string BuildIdOf(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return "";
  std::string id = ElfFileCache::ReadBuildId(fd, static_cast<uint64_t>(st.st_size));
  close(fd);
  return id;
}

bool CopyFile(const std::string& from, const std::string& to) {
  std::ifstream src(from, std::ios::binary);
  std::ofstream dst(to, std::ios::binary | std::ios::trunc);
  dst << src.rdbuf();
  return static_cast<bool>(dst);
}

// The bytes of the file at "offset" equal the bytes in memory at "pc".
void ExpectSameBytes(const std::string& path, uint64_t offset, uint64_t pc) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  char file_bytes[8];
  in.read(file_bytes, sizeof file_bytes);
  ASSERT_TRUE(in.good()) << path << " offset " << offset;
  EXPECT_EQ(0, memcmp(file_bytes, reinterpret_cast<const void*>(pc), sizeof file_bytes))
      << "file offset does not match the code in memory";
}

class SymbolizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    plain_ = new TestLib();
    stripped_ = new TestLib();
    ASSERT_TRUE(plain_->Load(PIPELINE_TESTLIB)) << dlerror();
    ASSERT_TRUE(stripped_->Load(PIPELINE_TESTLIB_STRIPPED)) << dlerror();
  }
  void SetUp() override { modules_ = ScanSet(); }
  static TestLib* plain_;
  static TestLib* stripped_;
  std::shared_ptr<const ModuleSet> modules_;
};
TestLib* SymbolizerTest::plain_ = nullptr;
TestLib* SymbolizerTest::stripped_ = nullptr;

TEST_F(SymbolizerTest, KnownFunctionWithFileAndLine) {
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  auto r = symbolizer.Symbolize(*modules_, pc);
  ASSERT_NE(nullptr, r->module);
  EXPECT_EQ(pc, r->address);
  EXPECT_EQ(plain_->path, r->module->path);
  EXPECT_FALSE(r->module->build_id.empty());
  EXPECT_EQ(BuildIdOf(plain_->path), r->module->build_id);
  EXPECT_LE(r->module->start, pc);
  EXPECT_LT(pc, r->module->end);
  EXPECT_EQ(r->file_offset, pc - r->module->start + r->module->file_offset);
  ExpectSameBytes(plain_->path, r->file_offset, pc);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("pipeline_test::HotFunction(int)", r->frames[0].function);
  EXPECT_EQ("_ZN13pipeline_test11HotFunctionEi", r->frames[0].system_name);
  EXPECT_TRUE(EndsWith(r->frames[0].file, "symbolizer_testlib.cc")) << r->frames[0].file;
  EXPECT_EQ(line, r->frames[0].line);
  EXPECT_GT(r->frames[0].start_line, 0);
  // Cached: one entry, the same mapping object.
  EXPECT_EQ(1u, symbolizer.cached_pcs());
  auto again = symbolizer.Symbolize(*modules_, pc);
  EXPECT_EQ(1u, symbolizer.cached_pcs());
  EXPECT_EQ(r->module.get(), again->module.get());
  EXPECT_EQ("pipeline_test::HotFunction(int)", again->frames[0].function);
}

TEST_F(SymbolizerTest, InlinedCalleeFirstThenCaller) {
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0, call_line = 0;
  plain_->inlined(&pc, &line, &call_line);
  auto r = symbolizer.Symbolize(*modules_, pc);
  ASSERT_EQ(2u, r->frames.size());
  EXPECT_EQ("pipeline_test::InlinedCallee(int)", r->frames[0].function);
  EXPECT_EQ(line, r->frames[0].line);
  EXPECT_TRUE(EndsWith(r->frames[0].file, "symbolizer_testlib.cc"));
  EXPECT_EQ("pipeline_test::CallerOfInlined(int)", r->frames[1].function);
  EXPECT_EQ(call_line, r->frames[1].line);
  EXPECT_TRUE(EndsWith(r->frames[1].file, "symbolizer_testlib.cc"));
}

TEST_F(SymbolizerTest, StrippedCopyUsesDynsymOrModuleOffset) {
  Symbolizer symbolizer;
  // Exported function: its name is still in .dynsym.
  uint64_t pc = stripped_->exported_pc();
  auto r = symbolizer.Symbolize(*modules_, pc);
  ASSERT_NE(nullptr, r->module);
  EXPECT_EQ(stripped_->path, r->module->path);
  // objcopy --strip-all keeps the (allocated) build-id note.
  EXPECT_EQ(BuildIdOf(plain_->path), r->module->build_id);
  ExpectSameBytes(stripped_->path, r->file_offset, pc);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("pipeline_test_exported_pc", r->frames[0].function);
  EXPECT_EQ("", r->frames[0].file);
  EXPECT_EQ(0, r->frames[0].line);

  // A local function has no symbol left: "module+0xoffset".
  pc = stripped_->hidden_pc();
  r = symbolizer.Symbolize(*modules_, pc);
  ASSERT_NE(nullptr, r->module);
  ExpectSameBytes(stripped_->path, r->file_offset, pc);
  std::string base = stripped_->path.substr(stripped_->path.rfind('/') + 1);
  char expected[256];
  snprintf(expected, sizeof expected, "%s+0x%llx", base.c_str(),
           static_cast<unsigned long long>(r->file_offset));
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ(expected, r->frames[0].function);

  // The same local function in the unstripped library has its name. The two
  // files share a build-id but are different files: two parses.
  r = symbolizer.Symbolize(*modules_, plain_->hidden_pc());
  EXPECT_EQ("(anonymous namespace)::HiddenFunction()", r->frames[0].function);
  EXPECT_EQ(2u, symbolizer.parsed_files());
}

TEST_F(SymbolizerTest, UnknownAddressAndCacheBound) {
  Symbolizer::Options options;
  options.max_cached_pcs = 4;
  Symbolizer symbolizer(options);
  auto r = symbolizer.Symbolize(*modules_, 16);
  EXPECT_EQ(nullptr, r->module);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("[unknown]+0x10", r->frames[0].function);
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  for (int i = 0; i < 10; ++i) symbolizer.Symbolize(*modules_, pc + i);
  EXPECT_LE(symbolizer.cached_pcs(), 4u);
  EXPECT_GE(symbolizer.cache_evictions(), 1);
}

TEST_F(SymbolizerTest, SameFileAtAnotherLoadBiasSharesParseAndCache) {
  // Another process with the same library 1 GiB higher (other ASLR bias).
  const uint64_t delta = uint64_t{1} << 30;
  std::vector<std::string> messages = ScanMessages();
  capture::ModuleMessage m = Header(MessageOf(messages, plain_->path));
  m.load_bias += delta;
  m.eh_frame_hdr += delta;
  for (uint32_t i = 0; i < m.segment_count; ++i) m.segments[i].start += delta;
  int rejected = -1;
  auto other = ModuleSet::FromMessages({WithHeader(MessageOf(messages, plain_->path), m)}, "",
                                       &rejected);
  ASSERT_EQ(0, rejected);

  Symbolizer symbolizer;
  uint64_t pc = 0, inline_pc = 0;
  int line = 0, call_line = 0;
  plain_->hot(&pc, &line);
  plain_->inlined(&inline_pc, &line, &call_line);
  auto a = symbolizer.Symbolize(*modules_, pc);
  auto a2 = symbolizer.Symbolize(*modules_, inline_pc);
  const size_t cached = symbolizer.cached_pcs();
  const size_t parsed = symbolizer.parsed_files();
  EXPECT_EQ(2u, cached);
  auto b = symbolizer.Symbolize(*other, pc + delta);
  auto b2 = symbolizer.Symbolize(*other, inline_pc + delta);
  EXPECT_EQ(cached, symbolizer.cached_pcs()) << "the second process must hit the same entries";
  EXPECT_EQ(parsed, symbolizer.parsed_files());
  EXPECT_EQ(1, symbolizer.files()->opens());  // one file, opened once
  ASSERT_EQ(a->frames.size(), b->frames.size());
  EXPECT_EQ(a->frames[0].function, b->frames[0].function);
  EXPECT_EQ(a->frames[0].line, b->frames[0].line);
  ASSERT_EQ(2u, b2->frames.size());
  EXPECT_EQ(a2->frames[1].function, b2->frames[1].function);
  // Each process has its own mapping; the file offsets are the same.
  EXPECT_EQ(a->module->start + delta, b->module->start);
  EXPECT_EQ(a->file_offset, b->file_offset);
  EXPECT_EQ(pc + delta, b->address);
}

TEST_F(SymbolizerTest, UnloadedModuleIsSymbolizedFromItsFile) {
  // A copy, loaded and unloaded before anything is symbolized.
  std::string copy = std::string(PIPELINE_TESTLIB) + ".unload-copy.so";
  ASSERT_TRUE(CopyFile(PIPELINE_TESTLIB, copy));
  TestLib lib;
  ASSERT_TRUE(lib.Load(copy)) << dlerror();
  uint64_t pc = 0;
  int line = 0;
  lib.hot(&pc, &line);
  auto modules = ScanSet();
  ASSERT_EQ(0, dlclose(lib.handle));
  Symbolizer symbolizer;
  auto after = symbolizer.Symbolize(*modules, pc);
  EXPECT_EQ("pipeline_test::HotFunction(int)", after->frames[0].function);
  EXPECT_EQ(line, after->frames[0].line);
  ASSERT_NE(nullptr, after->module);
  EXPECT_EQ(copy, after->module->path);

  // Once the file is gone too, a symbolizer that never read it keeps the
  // mapping (path, build-id) and names the PC by file offset.
  unlink(copy.c_str());
  Symbolizer late;
  auto gone = late.Symbolize(*modules, pc);
  ASSERT_NE(nullptr, gone->module);
  EXPECT_EQ(copy, gone->module->path);
  EXPECT_EQ(after->module->build_id, gone->module->build_id);
  EXPECT_EQ(after->file_offset, gone->file_offset);
  char expected[256];
  snprintf(expected, sizeof expected, "%s+0x%llx", copy.substr(copy.rfind('/') + 1).c_str(),
           static_cast<unsigned long long>(gone->file_offset));
  EXPECT_EQ(expected, gone->frames[0].function);
  EXPECT_EQ(1, late.files()->open_failures());
}

TEST_F(SymbolizerTest, ExitedProcessIsSymbolizedFromItsModules) {
  // A child loads a copy of the library (nowhere in this process), reports
  // a PC and its modules, and exits; the parent symbolizes afterwards.
  std::string copy = std::string(PIPELINE_TESTLIB) + ".child-copy." + std::to_string(getpid()) + ".so";
  ASSERT_TRUE(CopyFile(PIPELINE_TESTLIB, copy));
  int fds[2];
  ASSERT_EQ(0, pipe(fds));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    TestLib lib;
    if (!lib.Load(copy)) _exit(2);
    uint64_t pc = 0;
    int line = 0;
    lib.hot(&pc, &line);
    std::string out(reinterpret_cast<const char*>(&pc), 8);
    out.append(reinterpret_cast<const char*>(&line), sizeof line);
    for (const std::string& m : ScanMessages()) {
      uint32_t n = static_cast<uint32_t>(m.size());
      out.append(reinterpret_cast<const char*>(&n), 4).append(m);
    }
    size_t off = 0;
    while (off < out.size()) {
      ssize_t w = write(fds[1], out.data() + off, out.size() - off);
      if (w <= 0) _exit(3);
      off += static_cast<size_t>(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string in;
  char buf[65536];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) in.append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GE(in.size(), 12u);
  uint64_t pc;
  int line;
  memcpy(&pc, in.data(), 8);
  memcpy(&line, in.data() + 8, sizeof line);
  std::vector<std::string> messages;
  for (size_t off = 12; off + 4 <= in.size();) {
    uint32_t n;
    memcpy(&n, in.data() + off, 4);
    messages.push_back(in.substr(off + 4, n));
    off += 4 + n;
  }
  int rejected = -1;
  auto modules = ModuleSet::FromMessages(messages, "", &rejected);
  EXPECT_EQ(0, rejected);
  Symbolizer symbolizer;
  auto s = symbolizer.Symbolize(*modules, pc);
  ASSERT_NE(nullptr, s->module);
  EXPECT_EQ(copy, s->module->path);
  ASSERT_EQ(1u, s->frames.size());
  EXPECT_EQ("pipeline_test::HotFunction(int)", s->frames[0].function);
  EXPECT_EQ(line, s->frames[0].line);
  unlink(copy.c_str());
}

TEST_F(SymbolizerTest, BuildIdMismatchKeepsTheMappingAndNamesByOffset) {
  std::vector<std::string> messages = ScanMessages();
  for (std::string& raw : messages) {
    if (PathOf(raw) != plain_->path) continue;
    capture::ModuleMessage m = Header(raw);
    ASSERT_GT(m.build_id_size, 0u);
    m.build_id[0] ^= 0xff;  // the host ran another build of this path
    raw = WithHeader(raw, m);
  }
  auto modules = ModuleSet::FromMessages(messages, "");
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  auto r = symbolizer.Symbolize(*modules, pc);
  ASSERT_NE(nullptr, r->module);
  EXPECT_NE(BuildIdOf(plain_->path), r->module->build_id);
  EXPECT_EQ(modules->Find(pc)->build_id, r->module->build_id);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ(0u, r->frames[0].function.find("libpipeline_symbolizer_testlib.so+0x"))
      << r->frames[0].function;
  EXPECT_EQ(1, symbolizer.files()->build_id_mismatches());
}

TEST_F(SymbolizerTest, SharesTheUnwindersFileCache) {
  Symbolizer::Options options;
  options.files = std::make_shared<ElfFileCache>();
  Symbolizer symbolizer(options);
  EXPECT_EQ(options.files, symbolizer.files());
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  symbolizer.Symbolize(*modules_, pc);
  EXPECT_EQ(1, options.files->opens());
}

TEST_F(SymbolizerTest, VdsoIsSymbolizedFromTheAgentsOwnImage) {
  void* vdso = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(nullptr, vdso) << dlerror();
  void* fn = dlsym(vdso, "__vdso_clock_gettime");
  ASSERT_NE(nullptr, fn);
  Symbolizer symbolizer;
  auto r = symbolizer.Symbolize(*modules_, reinterpret_cast<uint64_t>(fn) + 1);
  ASSERT_NE(nullptr, r->module);
  EXPECT_EQ(capture::kVdsoPath, r->module->path);
  EXPECT_FALSE(r->module->build_id.empty());
  ASSERT_FALSE(r->frames.empty());
  EXPECT_NE(std::string::npos, r->frames.back().function.find("clock_gettime"))
      << r->frames.back().function;
  EXPECT_EQ(0, symbolizer.files()->build_id_mismatches());
}

TEST(DemangleTest, Names) {
  EXPECT_EQ("foo(int)", Demangle("_Z3fooi"));
  EXPECT_EQ("main", Demangle("main"));
  EXPECT_EQ("_Znot-valid", Demangle("_Znot-valid"));
}

}  // namespace
}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
