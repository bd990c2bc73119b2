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
#include <new>

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

// The bodies of malloc and free, also inlined into operator new/delete when
// those may skip libstdc++'s (see "C++ operator new / delete" below).
inline void* MallocImpl(size_t size) {
  if (!Ready()) return ArenaAlloc(size, 16);
  void* p = g_next.malloc(size);
  if (__builtin_expect(HeapSamplingOn(), 0)) OnAlloc(p, size);
  return p;
}

inline void FreeImpl(void* p) {
  if (__builtin_expect(HeapSamplingOn(), 0)) OnFree(p);
  if (__builtin_expect(InArena(p), 0)) return;
  if (p == nullptr || !Ready()) return;
  g_next.free(p);
}

}  // namespace

extern "C" {

STACKSTREAM_EXPORT void* malloc(size_t size) { return MallocImpl(size); }

STACKSTREAM_EXPORT void free(void* p) { FreeImpl(p); }

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

// ---- C++ operator new / delete ----
//
// libstdc++'s operators call malloc/free, so the hooks above see them. An
// allocator that brings its own operators (jemalloc, tcmalloc) allocates
// C++ objects without calling malloc: these wrappers forward every operator
// to the next definition and, when that definition is not libstdc++'s,
// sample/free-track here (once: never both here and in malloc). A host with
// no C++ runtime never calls them; our own code then gets malloc.
//
// The common case, libstdc++'s operators over our malloc/free (the global
// malloc and free are this library's), takes a shortcut: the unaligned
// forms run malloc's/free's body inline, as libstdc++'s would call them,
// so a C++ allocation costs the host no more calls than without us. Only a
// failed allocation goes on to libstdc++'s operator, which retries with the
// new_handler and throws std::bad_alloc (or returns nullptr) as it always
// does.

namespace {

enum CxxOp : int {
  kNew, kNewArray, kNewNothrow, kNewArrayNothrow,
  kNewAligned, kNewArrayAligned, kNewAlignedNothrow, kNewArrayAlignedNothrow,
  kDelete, kDeleteArray, kDeleteSized, kDeleteArraySized, kDeleteNothrow, kDeleteArrayNothrow,
  kDeleteAligned, kDeleteArrayAligned, kDeleteSizedAligned, kDeleteArraySizedAligned,
  kDeleteAlignedNothrow, kDeleteArrayAlignedNothrow, kCxxOps
};

constexpr const char* kCxxNames[kCxxOps] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t"};

void* g_cxx[kCxxOps];
// 0: not resolved yet; kCxxDirect: the shortcut above; kCxxForward: call
// the next operators (kCxxTrack: and sample there, they bypass malloc).
enum CxxMode : int { kCxxUnresolved = 0, kCxxDirect, kCxxForward, kCxxTrack };
std::atomic<int> g_cxx_mode{kCxxUnresolved};

// Whether the global (first) definition of "name" is this library's.
bool GlobalIsOurs(const char* name) {
  Dl_info self, global;
  void* sym = dlsym(RTLD_DEFAULT, name);
  return sym != nullptr && dladdr(reinterpret_cast<void*>(&GlobalIsOurs), &self) != 0 &&
         dladdr(sym, &global) != 0 && self.dli_fbase == global.dli_fbase;
}

__attribute__((noinline)) int ResolveCxx() {
  int mode = g_cxx_mode.load(std::memory_order_acquire);
  if (mode != kCxxUnresolved) return mode;
  void* found[kCxxOps];
  for (int i = 0; i < kCxxOps; ++i) found[i] = dlsym(RTLD_NEXT, kCxxNames[i]);
  bool libstdcxx = false;
  Dl_info info;
  if (found[kNew] != nullptr && dladdr(found[kNew], &info) != 0 && info.dli_fname != nullptr) {
    libstdcxx = strstr(info.dli_fname, "libstdc++") != nullptr;
  }
  if (!libstdcxx) {
    mode = kCxxTrack;
  } else if (GlobalIsOurs("malloc") && GlobalIsOurs("free")) {
    mode = kCxxDirect;
  } else {
    mode = kCxxForward;  // e.g. the executable defines malloc: libstdc++ calls that one
  }
  // Racing threads compute the same values; publishing twice is harmless.
  memcpy(g_cxx, found, sizeof found);
  g_cxx_mode.store(mode, std::memory_order_release);
  return mode;
}

inline int CurrentCxxMode() {
  int mode = g_cxx_mode.load(std::memory_order_acquire);
  return __builtin_expect(mode != kCxxUnresolved, 1) ? mode : ResolveCxx();
}

template <typename T>
inline T Cxx(CxxOp op) {
  CurrentCxxMode();
  return reinterpret_cast<T>(g_cxx[op]);
}

inline bool TrackCxx() {
  return __builtin_expect(HeapSamplingOn(), 0) &&
         g_cxx_mode.load(std::memory_order_relaxed) == kCxxTrack;
}

using NewFn = void* (*)(size_t);
using NewNothrowFn = void* (*)(size_t, const std::nothrow_t&);
using NewAlignedFn = void* (*)(size_t, std::align_val_t);
using NewAlignedNothrowFn = void* (*)(size_t, std::align_val_t, const std::nothrow_t&);
using DeleteFn = void (*)(void*);
using DeleteSizedFn = void (*)(void*, size_t);
using DeleteNothrowFn = void (*)(void*, const std::nothrow_t&);
using DeleteAlignedFn = void (*)(void*, std::align_val_t);
using DeleteSizedAlignedFn = void (*)(void*, size_t, std::align_val_t);
using DeleteAlignedNothrowFn = void (*)(void*, std::align_val_t, const std::nothrow_t&);

void* New(CxxOp op, size_t size) {
  if (__builtin_expect(CurrentCxxMode() == kCxxDirect, 1)) {
    void* p = MallocImpl(size != 0 ? size : 1);  // libstdc++'s operator new(0) asks for 1
    if (__builtin_expect(p != nullptr, 1)) return p;
  }
  NewFn next = Cxx<NewFn>(op);
  if (next == nullptr) {  // no C++ runtime in the host: only our own code calls this
    void* p = malloc(size);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void* p = next(size);
  if (TrackCxx()) OnAlloc(p, size);
  return p;
}

void* NewNothrow(CxxOp op, size_t size, const std::nothrow_t& nt) {
  if (__builtin_expect(CurrentCxxMode() == kCxxDirect, 1)) {
    void* p = MallocImpl(size != 0 ? size : 1);
    if (__builtin_expect(p != nullptr, 1)) return p;
  }
  NewNothrowFn next = Cxx<NewNothrowFn>(op);
  if (next == nullptr) return malloc(size);
  void* p = next(size, nt);
  if (TrackCxx()) OnAlloc(p, size);
  return p;
}

void* NewAligned(CxxOp op, size_t size, std::align_val_t align) {
  NewAlignedFn next = Cxx<NewAlignedFn>(op);
  if (next == nullptr) {
    void* p = nullptr;
    if (posix_memalign(&p, static_cast<size_t>(align), size) != 0) throw std::bad_alloc();
    return p;
  }
  void* p = next(size, align);
  if (TrackCxx()) OnAlloc(p, size);
  return p;
}

void* NewAlignedNothrow(CxxOp op, size_t size, std::align_val_t align, const std::nothrow_t& nt) {
  NewAlignedNothrowFn next = Cxx<NewAlignedNothrowFn>(op);
  if (next == nullptr) {
    void* p = nullptr;
    return posix_memalign(&p, static_cast<size_t>(align), size) == 0 ? p : nullptr;
  }
  void* p = next(size, align, nt);
  if (TrackCxx()) OnAlloc(p, size);
  return p;
}

// Deletes: free-track first (the block may be reused at once), then forward.
// (The unaligned forms of libstdc++ all end in free(p).)
template <typename Fn, typename... Args>
void Delete(CxxOp op, void* p, Args... args) {
  if (op < kDeleteAligned && __builtin_expect(CurrentCxxMode() == kCxxDirect, 1)) {
    FreeImpl(p);
    return;
  }
  Fn next = Cxx<Fn>(op);
  if (next == nullptr) {
    free(p);
    return;
  }
  if (TrackCxx()) OnFree(p);
  next(p, args...);
}

}  // namespace

STACKSTREAM_EXPORT void* operator new(size_t n) { return New(kNew, n); }
STACKSTREAM_EXPORT void* operator new[](size_t n) { return New(kNewArray, n); }
STACKSTREAM_EXPORT void* operator new(size_t n, const std::nothrow_t& nt) noexcept {
  return NewNothrow(kNewNothrow, n, nt);
}
STACKSTREAM_EXPORT void* operator new[](size_t n, const std::nothrow_t& nt) noexcept {
  return NewNothrow(kNewArrayNothrow, n, nt);
}
STACKSTREAM_EXPORT void* operator new(size_t n, std::align_val_t a) {
  return NewAligned(kNewAligned, n, a);
}
STACKSTREAM_EXPORT void* operator new[](size_t n, std::align_val_t a) {
  return NewAligned(kNewArrayAligned, n, a);
}
STACKSTREAM_EXPORT void* operator new(size_t n, std::align_val_t a,
                                      const std::nothrow_t& nt) noexcept {
  return NewAlignedNothrow(kNewAlignedNothrow, n, a, nt);
}
STACKSTREAM_EXPORT void* operator new[](size_t n, std::align_val_t a,
                                        const std::nothrow_t& nt) noexcept {
  return NewAlignedNothrow(kNewArrayAlignedNothrow, n, a, nt);
}
STACKSTREAM_EXPORT void operator delete(void* p) noexcept { Delete<DeleteFn>(kDelete, p); }
STACKSTREAM_EXPORT void operator delete[](void* p) noexcept {
  Delete<DeleteFn>(kDeleteArray, p);
}
STACKSTREAM_EXPORT void operator delete(void* p, size_t n) noexcept {
  Delete<DeleteSizedFn>(kDeleteSized, p, n);
}
STACKSTREAM_EXPORT void operator delete[](void* p, size_t n) noexcept {
  Delete<DeleteSizedFn>(kDeleteArraySized, p, n);
}
STACKSTREAM_EXPORT void operator delete(void* p, const std::nothrow_t& nt) noexcept {
  Delete<DeleteNothrowFn>(kDeleteNothrow, p, nt);
}
STACKSTREAM_EXPORT void operator delete[](void* p, const std::nothrow_t& nt) noexcept {
  Delete<DeleteNothrowFn>(kDeleteArrayNothrow, p, nt);
}
STACKSTREAM_EXPORT void operator delete(void* p, std::align_val_t a) noexcept {
  Delete<DeleteAlignedFn>(kDeleteAligned, p, a);
}
STACKSTREAM_EXPORT void operator delete[](void* p, std::align_val_t a) noexcept {
  Delete<DeleteAlignedFn>(kDeleteArrayAligned, p, a);
}
STACKSTREAM_EXPORT void operator delete(void* p, size_t n, std::align_val_t a) noexcept {
  Delete<DeleteSizedAlignedFn>(kDeleteSizedAligned, p, n, a);
}
STACKSTREAM_EXPORT void operator delete[](void* p, size_t n, std::align_val_t a) noexcept {
  Delete<DeleteSizedAlignedFn>(kDeleteArraySizedAligned, p, n, a);
}
STACKSTREAM_EXPORT void operator delete(void* p, std::align_val_t a,
                                        const std::nothrow_t& nt) noexcept {
  Delete<DeleteAlignedNothrowFn>(kDeleteAlignedNothrow, p, a, nt);
}
STACKSTREAM_EXPORT void operator delete[](void* p, std::align_val_t a,
                                          const std::nothrow_t& nt) noexcept {
  Delete<DeleteAlignedNothrowFn>(kDeleteArrayAlignedNothrow, p, a, nt);
}
