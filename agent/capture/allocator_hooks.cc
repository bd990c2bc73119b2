// The interposed allocator entry points of libstackstream.so (linked into
// the shared library only, never into test programs). Every call is
// forwarded to the next definition (dlsym RTLD_NEXT): glibc's malloc, or
// jemalloc/tcmalloc when the host brings one. Heap sampling
// (heap_sampler.h) sees the result; when it is off the extra cost is one
// predictable branch per call.
//
// Bootstrapping: dlsym itself may allocate (its error buffer). Until the
// next allocator is known, calls are served from a static arena (never
// reused, so it is zero-filled for calloc); free/realloc recognise arena
// blocks by address and never hand them to the real allocator. Other
// threads arriving during the lookup use the arena too (no waiting).
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <atomic>
#include <cstddef>

#include "capture/heap_sampler.h"

#define STACKSTREAM_EXPORT __attribute__((visibility("default")))

namespace {

using stackstream::agent::heap::HeapSamplingOn;
using stackstream::agent::heap::OnAlloc;
using stackstream::agent::heap::OnFree;

using MallocFn = void* (*)(size_t);
using FreeFn = void (*)(void*);
using CallocFn = void* (*)(size_t, size_t);
using ReallocFn = void* (*)(void*, size_t);
using PosixMemalignFn = int (*)(void**, size_t, size_t);
using AlignedAllocFn = void* (*)(size_t, size_t);
using ReallocarrayFn = void* (*)(void*, size_t, size_t);

struct NextAllocator {
  MallocFn malloc;
  FreeFn free;
  CallocFn calloc;
  ReallocFn realloc;
  PosixMemalignFn posix_memalign;
  AlignedAllocFn aligned_alloc;
  AlignedAllocFn memalign;
  MallocFn valloc;
  MallocFn pvalloc;
  ReallocarrayFn reallocarray;
};

NextAllocator g_next;
std::atomic<bool> g_ready{false};
std::atomic<int> g_resolving{0};

// The bootstrap arena: 16-byte header (the block's size) before each block.
constexpr size_t kArenaBytes = 256 * 1024;
alignas(64) unsigned char g_arena[kArenaBytes];
std::atomic<size_t> g_arena_used{0};

inline bool InArena(const void* p) {
  return static_cast<size_t>(static_cast<const unsigned char*>(p) - g_arena) < kArenaBytes;
}

void* ArenaAlloc(size_t size, size_t align) {
  if (align < 16) align = 16;
  if (size > kArenaBytes || align > 4096) return nullptr;
  size_t used = g_arena_used.load(std::memory_order_relaxed);
  for (;;) {
    size_t start = (used + 16 + align - 1) & ~(align - 1);
    size_t end = start + ((size + 15) & ~size_t{15});
    if (end > kArenaBytes) {
      errno = ENOMEM;
      return nullptr;
    }
    if (g_arena_used.compare_exchange_weak(used, end, std::memory_order_relaxed)) {
      memcpy(g_arena + start - sizeof(size_t), &size, sizeof size);
      return g_arena + start;
    }
  }
}

size_t ArenaSize(const void* p) {
  size_t size;
  memcpy(&size, static_cast<const unsigned char*>(p) - sizeof(size_t), sizeof size);
  return size;
}

template <typename T>
T Next(const char* name) {
  return reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}

// True once the next allocator is known. The thread doing the lookup (and
// any other meanwhile) gets false: use the arena.
__attribute__((noinline)) bool Resolve() {
  if (g_ready.load(std::memory_order_acquire)) return true;
  int expected = 0;
  if (!g_resolving.compare_exchange_strong(expected, 1)) return false;
  NextAllocator n;
  n.malloc = Next<MallocFn>("malloc");
  n.free = Next<FreeFn>("free");
  n.calloc = Next<CallocFn>("calloc");
  n.realloc = Next<ReallocFn>("realloc");
  n.posix_memalign = Next<PosixMemalignFn>("posix_memalign");
  n.aligned_alloc = Next<AlignedAllocFn>("aligned_alloc");
  n.memalign = Next<AlignedAllocFn>("memalign");
  n.valloc = Next<MallocFn>("valloc");
  n.pvalloc = Next<MallocFn>("pvalloc");
  n.reallocarray = Next<ReallocarrayFn>("reallocarray");
  if (n.malloc == nullptr || n.free == nullptr || n.calloc == nullptr || n.realloc == nullptr) {
    g_resolving.store(0);
    return false;  // cannot happen with a C library; keep serving the arena
  }
  g_next = n;
  g_ready.store(true, std::memory_order_release);
  return true;
}

inline bool Ready() {
  return __builtin_expect(g_ready.load(std::memory_order_acquire), 1) || Resolve();
}

}  // namespace

extern "C" {

STACKSTREAM_EXPORT void* malloc(size_t size) {
  if (!Ready()) return ArenaAlloc(size, 16);
  void* p = g_next.malloc(size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

STACKSTREAM_EXPORT void free(void* p) {
  if (__builtin_expect(HeapSamplingOn(), 0)) OnFree(p);
  if (__builtin_expect(InArena(p), 0)) return;
  if (p == nullptr || !Ready()) return;
  g_next.free(p);
}

STACKSTREAM_EXPORT void* calloc(size_t n, size_t size) {
  if (!Ready()) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
      errno = ENOMEM;
      return nullptr;
    }
    return ArenaAlloc(total, 16);  // never reused: already zero
  }
  void* p = g_next.calloc(n, size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, n * size);
  return p;
}

STACKSTREAM_EXPORT void* realloc(void* p, size_t size) {
  if (__builtin_expect(InArena(p), 0)) {
    void* q = malloc(size);
    if (q != nullptr) {
      size_t old = ArenaSize(p);
      memcpy(q, p, old < size ? old : size);
    }
    return q;
  }
  if (!Ready()) return p == nullptr ? ArenaAlloc(size, 16) : nullptr;
  if (__builtin_expect(HeapSamplingOn(), 0)) {
    if (p != nullptr) OnFree(p);
    void* q = g_next.realloc(p, size);
    // realloc(p, 0) may free p and return nullptr; a failed realloc keeps
    // p alive (then it is simply no longer tracked).
    OnAlloc(q, size);
    return q;
  }
  return g_next.realloc(p, size);
}

STACKSTREAM_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (__builtin_expect(InArena(p), 0) || !Ready() || g_next.reallocarray == nullptr) {
    return realloc(p, total);
  }
  if (__builtin_expect(HeapSamplingOn(), 0)) {
    if (p != nullptr) OnFree(p);
    void* q = g_next.reallocarray(p, n, size);
    OnAlloc(q, total);
    return q;
  }
  return g_next.reallocarray(p, n, size);
}

STACKSTREAM_EXPORT int posix_memalign(void** out, size_t align, size_t size) {
  if (!Ready()) {
    if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
    void* p = ArenaAlloc(size, align);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
  }
  int rc = g_next.posix_memalign(out, align, size);
  if (__builtin_expect(HeapSamplingOn(), 0) && rc == 0) OnAlloc(*out, size);
  return rc;
}

STACKSTREAM_EXPORT void* aligned_alloc(size_t align, size_t size) {
  if (!Ready() || g_next.aligned_alloc == nullptr) return ArenaAlloc(size, align);
  void* p = g_next.aligned_alloc(align, size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

STACKSTREAM_EXPORT void* memalign(size_t align, size_t size) {
  if (!Ready() || g_next.memalign == nullptr) return ArenaAlloc(size, align);
  void* p = g_next.memalign(align, size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

STACKSTREAM_EXPORT void* valloc(size_t size) {
  if (!Ready() || g_next.valloc == nullptr) return ArenaAlloc(size, 4096);
  void* p = g_next.valloc(size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

STACKSTREAM_EXPORT void* pvalloc(size_t size) {
  if (!Ready() || g_next.pvalloc == nullptr) return ArenaAlloc((size + 4095) & ~size_t{4095}, 4096);
  void* p = g_next.pvalloc(size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

}  // extern "C"
