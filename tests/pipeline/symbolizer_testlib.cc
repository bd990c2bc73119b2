// A shared library with known functions for the symbolizer tests. Built with
// -g -O2; a stripped copy (objcopy --strip-all) is made beside it.
// Each function returns the address of an instruction inside itself and the
// source line of that instruction.
#include <cstdint>

#define CURRENT_PC()                                  \
  ({                                                  \
    uint64_t pc_;                                     \
    asm volatile("1: lea 1b(%%rip), %0" : "=r"(pc_)); \
    pc_;                                              \
  })

namespace pipeline_test {

struct PcLine {
  uint64_t pc;
  int line;
};

__attribute__((noinline)) PcLine HotFunction(int x) {
  asm volatile("" ::"r"(x));
  return PcLine{CURRENT_PC(), __LINE__};
}

__attribute__((always_inline)) inline PcLine InlinedCallee(int x) {
  asm volatile("" ::"r"(x));
  return PcLine{CURRENT_PC(), __LINE__};
}

int g_call_line = 0;

__attribute__((noinline)) PcLine CallerOfInlined(int x) {
  g_call_line = __LINE__ + 1;
  PcLine r = InlinedCallee(x + 1);
  asm volatile("" ::"r"(r.pc));
  return r;
}

}  // namespace pipeline_test

namespace {
__attribute__((noinline)) uint64_t HiddenFunction() {
  asm volatile("");
  return CURRENT_PC();
}
}  // namespace

extern "C" {
__attribute__((visibility("default"), noinline)) uint64_t pipeline_test_exported_pc() {
  return CURRENT_PC();
}
__attribute__((visibility("default"))) uint64_t pipeline_test_hidden_pc() { return HiddenFunction(); }
__attribute__((visibility("default"))) void pipeline_test_hot(uint64_t* pc, int* line) {
  pipeline_test::PcLine r = pipeline_test::HotFunction(1);
  *pc = r.pc;
  *line = r.line;
}
__attribute__((visibility("default"))) void pipeline_test_inline(uint64_t* pc, int* line,
                                                                  int* call_line) {
  pipeline_test::PcLine r = pipeline_test::CallerOfInlined(1);
  *pc = r.pc;
  *line = r.line;
  *call_line = pipeline_test::g_call_line;
}
}
