// Symbolizer and ModuleMap on a library with known functions (built with -g),
// an always_inline function, and a stripped copy of the same library.
#include "pipeline/symbolizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "pipeline/module_map.h"
#include "test_lib.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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
  static TestLib* plain_;
  static TestLib* stripped_;
};
TestLib* SymbolizerTest::plain_ = nullptr;
TestLib* SymbolizerTest::stripped_ = nullptr;

TEST(ModuleMapTest, ParsesMapsLines) {
  Module m;
  EXPECT_TRUE(ParseMapsLine(
      "7f0c1a2b3000-7f0c1a2d5000 r-xp 00022000 fd:01 1234   /usr/lib/libc.so.6", &m));
  EXPECT_EQ(0x7f0c1a2b3000u, m.start);
  EXPECT_EQ(0x7f0c1a2d5000u, m.end);
  EXPECT_EQ(0x22000u, m.file_offset);
  EXPECT_EQ(1234u, m.inode);
  EXPECT_EQ("/usr/lib/libc.so.6", m.path);
  EXPECT_EQ(0x22100u, m.FileOffset(0x7f0c1a2b3100));
  EXPECT_EQ("libc.so.6+0x22100", m.FallbackName(0x7f0c1a2b3100));
  EXPECT_FALSE(ParseMapsLine("7f0c1a2b3000-7f0c1a2d5000 r--p 00000000 fd:01 1234 /x", &m));
  EXPECT_TRUE(ParseMapsLine("7ffd1000-7ffd3000 r-xp 00000000 00:00 0  [vdso]", &m));
  EXPECT_EQ("[vdso]", m.path);
}

TEST(ModuleMapTest, FindsOwnExecutableWithBuildId) {
  ModuleMap map;
  ASSERT_TRUE(map.Refresh().ok());
  auto self = map.Find(reinterpret_cast<uint64_t>(&EndsWith));
  ASSERT_NE(nullptr, self);
  char exe[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", exe, sizeof exe - 1), 0);
  EXPECT_EQ(exe, self->path);
  EXPECT_EQ(40u, self->build_id.size()) << "expected a sha1 build-id, got '" << self->build_id << "'";
  EXPECT_EQ(ReadBuildId(exe), self->build_id);
}

TEST_F(SymbolizerTest, KnownFunctionWithFileAndLine) {
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  auto r = symbolizer.Symbolize(pc);
  ASSERT_NE(nullptr, r->module);
  EXPECT_EQ(plain_->path, r->module->path);
  EXPECT_FALSE(r->module->build_id.empty());
  EXPECT_EQ(ReadBuildId(plain_->path), r->module->build_id);
  ExpectSameBytes(plain_->path, r->file_offset, pc);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("pipeline_test::HotFunction(int)", r->frames[0].function);
  EXPECT_EQ("_ZN13pipeline_test11HotFunctionEi", r->frames[0].system_name);
  EXPECT_TRUE(EndsWith(r->frames[0].file, "symbolizer_testlib.cc")) << r->frames[0].file;
  EXPECT_EQ(line, r->frames[0].line);
  EXPECT_GT(r->frames[0].start_line, 0);
  // Cached: the same object comes back.
  EXPECT_EQ(r.get(), symbolizer.Symbolize(pc).get());
}

TEST_F(SymbolizerTest, InlinedCalleeFirstThenCaller) {
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0, call_line = 0;
  plain_->inlined(&pc, &line, &call_line);
  auto r = symbolizer.Symbolize(pc);
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
  auto r = symbolizer.Symbolize(pc);
  ASSERT_NE(nullptr, r->module);
  EXPECT_EQ(stripped_->path, r->module->path);
  // objcopy --strip-all keeps the (allocated) build-id note.
  EXPECT_EQ(ReadBuildId(plain_->path), r->module->build_id);
  ExpectSameBytes(stripped_->path, r->file_offset, pc);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("pipeline_test_exported_pc", r->frames[0].function);
  EXPECT_EQ("", r->frames[0].file);
  EXPECT_EQ(0, r->frames[0].line);

  // A local function has no symbol left: "module+0xoffset".
  pc = stripped_->hidden_pc();
  r = symbolizer.Symbolize(pc);
  ASSERT_NE(nullptr, r->module);
  ExpectSameBytes(stripped_->path, r->file_offset, pc);
  std::string base = stripped_->path.substr(stripped_->path.rfind('/') + 1);
  char expected[256];
  snprintf(expected, sizeof expected, "%s+0x%llx", base.c_str(),
           static_cast<unsigned long long>(r->file_offset));
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ(expected, r->frames[0].function);

  // The same local function in the unstripped library has its name.
  r = symbolizer.Symbolize(plain_->hidden_pc());
  EXPECT_EQ("(anonymous namespace)::HiddenFunction()", r->frames[0].function);
}

TEST_F(SymbolizerTest, UnknownAddressAndCacheBound) {
  Symbolizer::Options options;
  options.max_cached_pcs = 4;
  Symbolizer symbolizer(options);
  auto r = symbolizer.Symbolize(16);
  EXPECT_EQ(nullptr, r->module);
  ASSERT_EQ(1u, r->frames.size());
  EXPECT_EQ("[unknown]+0x10", r->frames[0].function);
  uint64_t pc = 0;
  int line = 0;
  plain_->hot(&pc, &line);
  for (int i = 0; i < 10; ++i) symbolizer.Symbolize(pc + i);
  EXPECT_LE(symbolizer.cached_pcs(), 4u);
  EXPECT_GE(symbolizer.cache_evictions(), 1);
}

TEST_F(SymbolizerTest, UnloadedModuleKeepsResolvedNames) {
  // A third copy, loaded and unloaded here.
  std::string copy = std::string(PIPELINE_TESTLIB) + ".unload-copy.so";
  {
    std::ifstream src(PIPELINE_TESTLIB, std::ios::binary);
    std::ofstream dst(copy, std::ios::binary);
    dst << src.rdbuf();
  }
  TestLib lib;
  ASSERT_TRUE(lib.Load(copy)) << dlerror();
  Symbolizer symbolizer;
  uint64_t pc = 0;
  int line = 0;
  lib.hot(&pc, &line);
  auto before = symbolizer.Symbolize(pc);
  EXPECT_EQ("pipeline_test::HotFunction(int)", before->frames[0].function);
  ASSERT_EQ(0, dlclose(lib.handle));
  unlink(copy.c_str());
  symbolizer.RefreshModules();
  auto after = symbolizer.Symbolize(pc);
  EXPECT_EQ("pipeline_test::HotFunction(int)", after->frames[0].function);
  ASSERT_NE(nullptr, after->module);
  EXPECT_EQ(copy, after->module->path);
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
