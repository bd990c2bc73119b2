// A plugin for the dlclose test: its frame sits between two test frames.
extern "C" __attribute__((visibility("default"), noinline)) int unwind_test_plugin_call(
    int (*callback)(void*), void* arg) {
  int r = callback(arg);
  asm volatile("" ::: "memory");
  return r + 1;
}
