// The hand-off format between the capture library in the host
// (libstackstream.so) and stackstream-agent: plain, versioned data in shared
// memory (memfd) and in messages on a Unix SOCK_SEQPACKET socket. Nothing in
// it points into the live host: the agent converts it after the host is gone.
//
// Shared memory (each region is a memfd the host creates, seals at its size
// (F_SEAL_SHRINK | F_SEAL_GROW) and hands over with SCM_RIGHTS; the agent
// refuses unsealed regions, maps them MAP_SHARED and keeps them mapped until
// it has drained them, also after the host exited or was killed):
//   - one ControlBlock per process: monotonic counters the host bumps;
//   - one SampleRing per sampled thread (rings are recycled between threads):
//     a RingHeader, then "slots" records of "slot_bytes" each: a
//     SampleRecord (registers, SP, tid, time, weight, module generation)
//     followed by the copy of the top of the stack.
//   The ring is single-producer (the owning thread's signal handler) /
//   single-consumer (the agent): head is written by the producer only, tail
//   by the consumer only. Counters are monotonic totals written by the host
//   only; the agent remembers what it has seen and takes differences.
//
// Messages (host -> agent unless noted; each one datagram <= kMaxMessageBytes,
// starting with a MessageHeader):
//   kHello        first message: who the process is, its STACKSTREAM_*
//                 environment; fds: [control memfd, stderr, output (optional)]
//   kRing         a new ring; fd: the ring memfd
//   kModule       a module loaded as of generation G (path, build-id, bias,
//                 PT_LOAD segments, .eh_frame_hdr)
//   kModuleGone   a module unloaded as of generation G (same body; matched
//                 by load bias and path)
//   kHeapTable    heap profiling is on: the live-allocation table; fd: its
//                 memfd (see HeapTableHeader)
//   kModulesEnd   generation G is complete: the set of G is the set of G-1
//                 plus its kModule minus its kModuleGone messages. After
//                 (re)connecting the host sends every loaded module as
//                 kModule of a new generation (a full set; the agent starts
//                 that set empty when it has no earlier generation). The
//                 host stamps G on samples only after kModulesEnd(G) is sent.
//   kFlush        stackstream_flush(): close the current window now
//   kGoodbye      the host is exiting: drain, final flush
//   kGoodbyeDone  agent -> host: the final flush is written (offline file
//                 complete); the host waits for it at most ~1 s, and only
//                 when STACKSTREAM_OUTPUT is set
// The agent must treat every byte as untrusted: check magic, version, sizes
// and bounds, and drop a client that sends garbage.
//
// Layout rules: fixed-size little-endian fields, explicit padding, no
// pointers. Change only by appending fields and bumping kFormatVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace stackstream {
namespace capture {

constexpr uint32_t kFormatVersion = 3;  // 2: heap records, kHeapTable; 3: sample labels
constexpr uint64_t kControlMagic = 0x3130544c52544353ULL;  // "SCTRLT01"
constexpr uint64_t kRingMagic = 0x31304752494e4753ULL;     // "SGNIRG01"
constexpr uint32_t kMessageMagic = 0x53534d31;             // "1MSS"
constexpr size_t kMaxMessageBytes = 8192;

// Registers follow libunwind's x86_64 numbering (UNW_X86_64_RAX = 0 ...
// UNW_X86_64_R15 = 15, UNW_X86_64_RIP = 16).
constexpr int kSnapshotRegs = 17;
constexpr int kRegRbp = 6;
constexpr int kRegRsp = 7;
constexpr int kRegRip = 16;

// Bytes of stack copied per sample (from SP towards the stack's end).
constexpr uint32_t kStackCopyBytes = 32 * 1024;

// ---- shared memory ----

struct ControlBlock {
  uint64_t magic;           // kControlMagic
  uint32_t version;         // kFormatVersion
  uint32_t size;            // sizeof(ControlBlock) as the host built it
  int32_t pid;
  uint32_t flags;           // reserved, 0
  // Monotonic totals, bumped by the host only.
  std::atomic<uint64_t> timers_failed;      // threads whose clock could not be armed
  std::atomic<uint64_t> foreign_signals;    // our signal, not from our clocks
  std::atomic<uint64_t> rings_failed;       // threads not sampled: no ring
  std::atomic<uint64_t> messages_dropped;   // messages the host could not send
  // Times the host reconnected to an agent; bumped before the new hello, so
  // a hello with reconnects > 0 starts a session that continues another.
  std::atomic<uint64_t> reconnects;
  // Written by the agent only: ring records it has consumed and included in
  // a closed window (handed to the sender / offline writer). A new agent
  // (e.g. a restarted node daemon) counts the records an earlier one
  // consumed but never flushed: sum of ring tails - this.
  std::atomic<uint64_t> agent_records_flushed;
  std::atomic<uint64_t> reserved[10];
};
static_assert(sizeof(std::atomic<uint64_t>) == 8, "lock-free 64-bit atomics in shared memory");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared-memory atomics must be lock-free");

constexpr uint32_t kRecordStackCut = 1;  // the stack was longer than the copy

// Thread labels (stackstream_set_thread_label): up to kMaxSampleLabels per
// thread, copied into every clock sample the thread takes. A key is 1 to
// kMaxLabelKeyBytes bytes of [A-Za-z0-9_.] starting with a letter or '_'; a
// value is 0 to kMaxLabelValueBytes bytes of printable ASCII (0x20-0x7e).
// The host writes these rules; the agent checks them again on its copy.
constexpr int kMaxSampleLabels = 4;
constexpr uint32_t kMaxLabelKeyBytes = 31;
constexpr uint32_t kMaxLabelValueBytes = 63;

struct RecordLabel {
  uint8_t key_size;    // 0: an unused slot
  uint8_t value_size;
  char key[kMaxLabelKeyBytes];      // not NUL-terminated
  char value[kMaxLabelValueBytes];  // not NUL-terminated
};
static_assert(sizeof(RecordLabel) == 96, "fixed layout");

inline bool IsLabelKeyChar(unsigned char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  return !first && ((c >= '0' && c <= '9') || c == '.');
}
inline bool IsLabelValueChar(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

// The agent's check of a label it copied out of shared memory.
inline bool IsValidRecordLabel(const RecordLabel& l) {
  if (l.key_size == 0 || l.key_size > kMaxLabelKeyBytes || l.value_size > kMaxLabelValueBytes) {
    return false;
  }
  for (uint32_t i = 0; i < l.key_size; ++i) {
    if (!IsLabelKeyChar(static_cast<unsigned char>(l.key[i]), i == 0)) return false;
  }
  for (uint32_t i = 0; i < l.value_size; ++i) {
    if (!IsLabelValueChar(static_cast<unsigned char>(l.value[i]))) return false;
  }
  return true;
}

// SampleRecord::kind
constexpr uint32_t kRecordCpu = 0;    // a clock sample (signal handler)
constexpr uint32_t kRecordAlloc = 1;  // a sampled allocation (allocator hooks)

struct SampleRecord {
  uint64_t regs[kSnapshotRegs];
  uint64_t stack_start;        // SP at the interruption
  uint32_t stack_size;         // bytes copied after this record
  uint32_t weight;             // 1 + timer overruns (kRecordCpu); 1 (kRecordAlloc)
  int32_t tid;
  uint32_t flags;              // kRecordStackCut
  int64_t timestamp_ns;        // CLOCK_REALTIME
  uint64_t module_generation;  // the host's module generation when taken
  // kRecordAlloc only. The registers are the allocator hook's own: the
  // agent drops the leading frames that lie in the capture library.
  uint32_t kind;               // kRecordCpu / kRecordAlloc
  uint32_t reserved0;
  uint64_t alloc_size;         // bytes requested
  uint64_t alloc_address;      // the block returned (informational)
  uint64_t alloc_id;           // its id in the heap table; 0 = not tracked (table full)
  uint64_t heap_rate;          // mean bytes between samples when it was taken
  uint64_t reserved1;
  // Format 3: the thread's labels when the sample was taken (kRecordCpu;
  // label_count is 0 on kRecordAlloc). Slots [0, label_count) are used,
  // each one whole (the host double-buffers them, see thread_labels.h).
  uint32_t label_count;        // <= kMaxSampleLabels
  uint32_t reserved2;
  RecordLabel labels[kMaxSampleLabels];
  uint64_t reserved3;
  // Followed by "stack_size" bytes (room for the ring's stack_capacity).
};
static_assert(sizeof(SampleRecord) % 16 == 0, "keep the stack copy 16-byte aligned");

constexpr uint32_t kRingHeaderBytes = 4096;  // slots start here

struct RingHeader {
  uint64_t magic;              // kRingMagic
  uint32_t version;            // kFormatVersion
  uint32_t header_bytes;       // kRingHeaderBytes
  uint32_t slots;              // power of two
  uint32_t slot_bytes;         // multiple of 64, >= sizeof(SampleRecord) + stack_capacity
  uint32_t stack_capacity;
  uint32_t ring_id;            // unique per process
  alignas(64) std::atomic<uint64_t> head;  // producer: records published
  alignas(64) std::atomic<uint64_t> tail;  // consumer: records consumed
  // Monotonic totals, bumped by the producer (signal handler).
  alignas(64) std::atomic<uint64_t> dropped_ring_full;
  std::atomic<uint64_t> dropped_bad_stack;  // SP outside the known stack
  std::atomic<uint64_t> reentrant;
  std::atomic<int32_t> tid;    // thread owning the ring now (informational)
};
static_assert(sizeof(RingHeader) <= kRingHeaderBytes, "ring header fits its page");

// Total bytes of a ring memfd.
inline uint64_t RingBytes(uint32_t slots, uint32_t slot_bytes) {
  return uint64_t{kRingHeaderBytes} + uint64_t{slots} * slot_bytes;
}

// The live-allocation table (heap profiling): one memfd per process, sealed
// at its size. The host inserts (address, id) when it samples an allocation
// (before publishing the record) and clears the slot when that address is
// freed; the agent reads the ids present at each flush: in-use = sampled
// records whose id is still in the table. Open addressing, linear probing
// over at most kHeapProbe slots; address 0 = empty, 1 = freed (tombstone).
// A slot's id is written after its address and cleared before it: a reader
// may see an address with id 0 (skip it).
constexpr uint64_t kHeapTableMagic = 0x3130504145485353ULL;  // "SSHEAP01"
constexpr uint32_t kHeapTableHeaderBytes = 4096;
constexpr uint32_t kHeapProbe = 32;
constexpr uint64_t kHeapTombstone = 1;

struct HeapSlot {
  std::atomic<uint64_t> address;
  std::atomic<uint64_t> id;
};

struct HeapTableHeader {
  uint64_t magic;               // kHeapTableMagic
  uint32_t version;             // kFormatVersion
  uint32_t slots;               // power of two; HeapSlots start at kHeapTableHeaderBytes
  uint32_t filter_slots;        // host only: counters after the slots (power of two)
  uint32_t reserved;
  // Monotonic totals, bumped by the host only.
  std::atomic<uint64_t> table_full;       // sampled allocations not tracked for in-use
  std::atomic<uint64_t> no_thread;        // sampled allocations on threads without a ring
  std::atomic<uint64_t> ring_full;        // sampled allocations dropped: ring full
  std::atomic<uint64_t> reentrant;        // sampled allocations inside a signal handler / hook
  std::atomic<uint64_t> reserved_counters[4];
};
static_assert(sizeof(HeapTableHeader) <= kHeapTableHeaderBytes, "heap table header fits");

inline uint64_t HeapTableBytes(uint32_t slots, uint32_t filter_slots) {
  return uint64_t{kHeapTableHeaderBytes} + uint64_t{slots} * sizeof(HeapSlot) +
         uint64_t{filter_slots} * sizeof(uint16_t);
}

// ---- messages ----

enum MessageType : uint32_t {
  kHello = 1,
  kRing = 2,
  kModule = 3,
  kModulesEnd = 4,
  kFlush = 5,
  kGoodbye = 6,
  kGoodbyeDone = 7,
  kModuleGone = 8,
  kHeapTable = 9,
};

struct MessageHeader {
  uint32_t magic;  // kMessageMagic
  uint32_t type;   // MessageType
  uint32_t size;   // bytes of the whole message, header included
  uint32_t version;  // kFormatVersion
};

constexpr uint32_t kHelloHasStderr = 1;    // fds[1] is the host's stderr
// fds[2] is the host descriptor STACKSTREAM_OUTPUT names (/dev/stdout,
// /dev/stderr, /dev/fd/N, /proc/self/fd/N): those names mean the host's
// descriptors, not the agent's.
constexpr uint32_t kHelloHasOutputFd = 2;

// Followed by "env_bytes" of "KEY=VALUE\0" strings (the host's STACKSTREAM_*
// variables) and then "exe_bytes" of the executable path ("\0"-terminated).
struct HelloMessage {
  MessageHeader header;
  int32_t pid;
  int32_t ppid;
  uint32_t flags;           // kHelloHas*
  uint32_t env_bytes;
  uint32_t exe_bytes;
  uint32_t reserved;
  int64_t start_time_ns;    // CLOCK_REALTIME when capture started in this process
  uint64_t control_bytes;   // size of the control memfd
};

struct HeapTableMessage {
  MessageHeader header;
  uint32_t slots;
  uint32_t filter_slots;
  uint64_t bytes;           // size of the table memfd
};

struct RingMessage {
  MessageHeader header;
  uint32_t ring_id;
  uint32_t reserved;
  uint64_t bytes;           // size of the ring memfd
};

constexpr int kMaxModuleSegments = 8;
constexpr const char kVdsoPath[] = "[vdso]";
constexpr int kMaxBuildIdBytes = 32;

struct ModuleSegment {
  uint64_t start;          // runtime address (load bias + p_vaddr)
  uint64_t mem_size;       // p_memsz
  uint64_t file_offset;    // p_offset
  uint64_t file_size;      // p_filesz
  uint32_t flags;          // PF_R | PF_W | PF_X
  uint32_t reserved;
};

// Followed by "path_bytes" of path ("\0"-terminated). The main program's
// path is its /proc/self/exe target; the vDSO's is kVdsoPath (it has no file:
// its image is the kernel's, the same in the agent's own address space).
struct ModuleMessage {
  MessageHeader header;
  uint64_t generation;
  uint64_t load_bias;          // dlpi_addr
  uint64_t eh_frame_hdr;       // runtime address of PT_GNU_EH_FRAME, 0 if none
  uint64_t eh_frame_hdr_size;
  uint64_t dev;                // st_dev of the file (0 when unknown)
  uint64_t inode;              // st_ino of the file (0 when unknown)
  uint32_t build_id_size;      // 0 when the module has none
  uint8_t build_id[kMaxBuildIdBytes];
  uint32_t segment_count;      // <= kMaxModuleSegments (PT_LOAD entries)
  ModuleSegment segments[kMaxModuleSegments];
  uint32_t path_bytes;
  uint32_t reserved;
};

constexpr uint32_t kModulesEndFull = 1;  // generation G is a full set (not a delta)

struct ModulesEndMessage {
  MessageHeader header;
  uint64_t generation;
  uint32_t module_count;       // modules in the set of generation G
  uint32_t flags;              // kModulesEndFull
};

struct SimpleMessage {  // kFlush, kGoodbye, kGoodbyeDone
  MessageHeader header;
};

}  // namespace capture
}  // namespace stackstream
