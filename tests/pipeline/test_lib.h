// Helpers for the pipeline unit tests: load the symbolizer test library
// (plain or stripped copy) and get PCs of known functions in it.
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <string>

namespace stackstream {
namespace agent {
namespace pipeline {

struct TestLib {
  std::string path;
  void* handle = nullptr;
  void (*hot)(uint64_t* pc, int* line) = nullptr;
  void (*inlined)(uint64_t* pc, int* line, int* call_line) = nullptr;
  uint64_t (*exported_pc)() = nullptr;
  uint64_t (*hidden_pc)() = nullptr;

  bool Load(const std::string& p) {
    path = p;
    handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) return false;
    hot = reinterpret_cast<decltype(hot)>(dlsym(handle, "pipeline_test_hot"));
    inlined = reinterpret_cast<decltype(inlined)>(dlsym(handle, "pipeline_test_inline"));
    exported_pc = reinterpret_cast<decltype(exported_pc)>(dlsym(handle, "pipeline_test_exported_pc"));
    hidden_pc = reinterpret_cast<decltype(hidden_pc)>(dlsym(handle, "pipeline_test_hidden_pc"));
    return hot && inlined && exported_pc && hidden_pc;
  }
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
