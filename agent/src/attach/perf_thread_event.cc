#include "attach/perf_thread_event.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace stackstream {
namespace agent {
namespace {

// asm/perf_regs.h (x86_64): AX BX CX DX SI DI BP SP IP = 0..8, R8..R15 = 16..23.
constexpr uint64_t kRegsMask = 0x1ffULL | (0xffULL << 16);
// The order perf writes them in (ascending bit) -> libunwind's numbering
// (RAX 0, RDX 1, RCX 2, RBX 3, RSI 4, RDI 5, RBP 6, RSP 7, R8..R15 8..15, RIP 16).
constexpr int kPerfToUnwind[17] = {0, 3, 2, 1, 4, 5, 6, 7, 16, 8, 9, 10, 11, 12, 13, 14, 15};
// Ring sizes tried, largest first (a smaller one where the locked-memory
// limit, perf_event_mlock_kb + RLIMIT_MEMLOCK, refuses it). A record is
// ~33 KiB: 64 pages hold 7, 256 pages 31 (~30 ms of a thread at 1000 Hz).
constexpr int kDataPagesTried[] = {256, 128, 64, 32, 16};
constexpr int kDataPagesTriedSlow[] = {64, 32, 16};  // <= 200 Hz

long PerfEventOpen(perf_event_attr* attr, pid_t tid) {
  return syscall(SYS_perf_event_open, attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

}  // namespace

PerfThreadEvent::~PerfThreadEvent() {
  if (base_ != nullptr) munmap(base_, map_bytes_);
  if (fd_ >= 0) close(fd_);
}

std::unique_ptr<PerfThreadEvent> PerfThreadEvent::Open(pid_t tid, uint64_t period_ns, int* error,
                                                       std::string* what) {
  perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.sample_period = period_ns;
  attr.sample_type =
      PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
  attr.sample_regs_user = kRegsMask;
  attr.sample_stack_user = kStackBytes;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  attr.exclude_callchain_kernel = 1;
  attr.mmap = 1;
  attr.mmap2 = 1;
  attr.task = 1;
  attr.use_clockid = 1;
  attr.clockid = CLOCK_MONOTONIC;
  attr.watermark = 1;
  long fd = PerfEventOpen(&attr, tid);
  if (fd < 0) {
    *error = errno;
    *what = "perf_event_open";
    return nullptr;
  }
  std::unique_ptr<PerfThreadEvent> ev(new PerfThreadEvent());
  ev->tid_ = tid;
  ev->fd_ = static_cast<int>(fd);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  int last_errno = 0;
  const bool fast = period_ns < 5000000;  // > 200 Hz
  std::vector<int> tried(fast ? std::begin(kDataPagesTried) : std::begin(kDataPagesTriedSlow),
                         fast ? std::end(kDataPagesTried) : std::end(kDataPagesTriedSlow));
  for (int pages : tried) {
    size_t bytes = page * static_cast<size_t>(pages + 1);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, ev->fd_, 0);
    if (p == MAP_FAILED) {
      last_errno = errno;  // EPERM past perf_event_mlock_kb: try a smaller ring
      continue;
    }
    ev->base_ = p;
    ev->map_bytes_ = bytes;
    ev->data_bytes_ = page * static_cast<size_t>(pages);
    break;
  }
  if (ev->base_ == nullptr) {
    *error = last_errno;
    *what = "mmap of the perf ring";
    return nullptr;
  }
  // Wake a poller when half the ring is full (the session also polls on a timer).
  return ev;
}

int PerfThreadEvent::Drain(const PerfRecordHandler& handler) {
  auto* meta = static_cast<perf_event_mmap_page*>(base_);
  const uint8_t* data = static_cast<const uint8_t*>(base_) + meta->data_offset;
  const uint64_t size = meta->data_size != 0 ? meta->data_size : data_bytes_;
  uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = meta->data_tail;
  int records = 0;
  while (tail + sizeof(perf_event_header) <= head) {
    perf_event_header h;
    const uint64_t at = tail % size;
    if (at + sizeof h <= size) {
      memcpy(&h, data + at, sizeof h);
    } else {
      uint64_t first = size - at;
      memcpy(&h, data + at, first);
      memcpy(reinterpret_cast<uint8_t*>(&h) + first, data, sizeof h - first);
    }
    if (h.size < sizeof h || tail + h.size > head) break;
    const uint8_t* rec;
    if (at + h.size <= size) {
      rec = data + at;
    } else {
      record_.resize(h.size);
      uint64_t first = size - at;
      memcpy(record_.data(), data + at, first);
      memcpy(record_.data() + first, data, h.size - first);
      rec = record_.data();
    }
    const uint8_t* body = rec + sizeof h;
    const uint8_t* end = rec + h.size;
    auto u64 = [&](const uint8_t*& p, uint64_t* out) {
      if (p + 8 > end) return false;
      memcpy(out, p, 8);
      p += 8;
      return true;
    };
    switch (h.type) {
      case PERF_RECORD_SAMPLE: {
        if (!handler.sample) break;
        PerfSample s;
        const uint8_t* p = body;
        uint64_t pidtid = 0, abi = 0, stack_size = 0;
        if (!u64(p, &pidtid) || !u64(p, &s.time_ns) || !u64(p, &abi)) break;
        s.pid = static_cast<int32_t>(pidtid & 0xffffffffu);
        s.tid = static_cast<int32_t>(pidtid >> 32);
        bool ok = true;
        if (abi != PERF_SAMPLE_REGS_ABI_NONE) {
          for (int i = 0; i < 17 && ok; ++i) ok = u64(p, &s.regs[kPerfToUnwind[i]]);
          s.has_regs = ok;
        }
        if (!ok || !u64(p, &stack_size)) break;
        s.stack_requested = stack_size;
        if (stack_size > 0) {
          if (p + stack_size + 8 > end) break;
          s.stack = p;
          uint64_t dyn = 0;
          memcpy(&dyn, p + stack_size, 8);
          s.stack_size = dyn <= stack_size ? dyn : stack_size;
        }
        handler.sample(s);
        break;
      }
      case PERF_RECORD_LOST: {
        uint64_t id = 0, lost = 0;
        const uint8_t* p = body;
        if (handler.lost && u64(p, &id) && u64(p, &lost)) handler.lost(lost);
        break;
      }
      case PERF_RECORD_LOST_SAMPLES: {
        uint64_t lost = 0;
        const uint8_t* p = body;
        if (handler.lost && u64(p, &lost)) handler.lost(lost);
        break;
      }
      case PERF_RECORD_MMAP2: {
        // pid, tid, addr, len, pgoff, maj, min, ino, ino_generation, prot, flags, filename
        constexpr size_t kProtAt = 8 + 24 + 24;
        uint32_t prot = 0;
        if (body + kProtAt + 4 <= end) memcpy(&prot, body + kProtAt, 4);
        if (handler.mmap) handler.mmap((prot & PROT_EXEC) != 0);
        break;
      }
      case PERF_RECORD_FORK: {
        uint32_t ids[4];  // pid, ppid, tid, ptid
        if (handler.fork && body + sizeof ids <= end) {
          memcpy(ids, body, sizeof ids);
          handler.fork(static_cast<int32_t>(ids[0]), static_cast<int32_t>(ids[2]));
        }
        break;
      }
      default:
        break;
    }
    tail += h.size;
    ++records;
  }
  __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  return records;
}

}  // namespace agent
}  // namespace stackstream
