// Fuzz target: the sample records a host writes into its ring (registers,
// stack copy, sizes, weights, generations) as stackstream-agent reads and
// unwinds them against the host's modules. The host here is this process:
// its real modules are announced, and each record starts from a real
// register set and stack copy of this process that the input then corrupts
// (or replaces); some records are sampled allocations, and the host may
// announce a live-allocation table (heap profiling) whose header and slots
// the input writes. The agent must not crash or read outside the copy, and
// every sample it passes on must be well formed (session_harness.h).
#include <fuzzer/FuzzedDataProvider.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "capture/capture_format.h"
#include "capture/ucontext_regs.h"
#include "fuzz_check.h"
#include "session_harness.h"

namespace {

using stackstream::fuzz::SessionHarness;
namespace capture = stackstream::capture;

constexpr uint32_t kSlots = 8;
constexpr uint32_t kStackCapacity = 4096;

// Copies live stack memory (other frames' red zones included) the way the
// capture's handler does: not through ASan's checked memcpy.
__attribute__((no_sanitize("address"))) void CopyStack(uint8_t* to, const uint8_t* from,
                                                       size_t n) {
  for (size_t i = 0; i < n; ++i) to[i] = from[i];
}

// Registers and the top of the stack of this very call: a record a real
// handler could have written.
__attribute__((noinline)) void RealSnapshot(capture::SampleRecord* rec, uint8_t* stack) {
  ucontext_t uc;
  getcontext(&uc);
  capture::RegsFromUcontext(&uc, rec->regs);
  rec->stack_start = rec->regs[capture::kRegRsp];
  CopyStack(stack, reinterpret_cast<const uint8_t*>(rec->stack_start), kStackCapacity);
  rec->stack_size = kStackCapacity;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t slot_bytes =
      static_cast<uint32_t>((sizeof(capture::SampleRecord) + kStackCapacity + 63) & ~size_t{63});
  std::string mem(capture::RingBytes(kSlots, slot_bytes), '\0');
  auto* header = reinterpret_cast<capture::RingHeader*>(&mem[0]);
  header->magic = capture::kRingMagic;
  header->version = capture::kFormatVersion;
  header->header_bytes = capture::kRingHeaderBytes;
  header->slots = kSlots;
  header->slot_bytes = slot_bytes;
  header->stack_capacity = kStackCapacity;
  const uint32_t records = in.ConsumeIntegralInRange<uint32_t>(1, kSlots);
  uint32_t intact = 0;  // real snapshots left as they were
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  for (uint32_t i = 0; i < records; ++i) {
    auto* rec = reinterpret_cast<capture::SampleRecord*>(&mem[capture::kRingHeaderBytes + i * slot_bytes]);
    auto* stack = reinterpret_cast<uint8_t*>(rec + 1);
    if (in.ConsumeBool()) {
      RealSnapshot(rec, stack);
      rec->weight = 1;
      rec->tid = gettid();
      rec->timestamp_ns = now.tv_sec * 1000000000LL + now.tv_nsec;
      rec->module_generation = 1;
      if (in.ConsumeBool()) {  // a sampled allocation (heap profiling)
        rec->kind = capture::kRecordAlloc;
        rec->alloc_size = in.ConsumeIntegral<uint64_t>();
        rec->alloc_address = in.ConsumeIntegral<uint64_t>();
        rec->alloc_id = in.ConsumeIntegralInRange<uint64_t>(0, 16);
        rec->heap_rate = in.ConsumeIntegral<uint64_t>();
      }
      if (in.ConsumeBool()) {  // thread labels: any count, any bytes
        rec->label_count = in.ConsumeIntegral<uint32_t>();
        std::string labels = in.ConsumeBytesAsString(sizeof rec->labels);
        memcpy(rec->labels, labels.data(), labels.size());
      }
      const int edits = in.ConsumeIntegralInRange(0, 8);
      // An intact clock record must give a sample. (An allocation record's
      // leading frames in the capture library are dropped: here that is
      // this whole program, so it may give none.)
      intact += edits == 0 && rec->kind == capture::kRecordCpu;
      for (int e = 0; e < edits; ++e) {
        const size_t at = in.ConsumeIntegralInRange<size_t>(0, slot_bytes - 1);
        reinterpret_cast<uint8_t*>(rec)[at] ^= in.ConsumeIntegral<uint8_t>();
      }
    } else {
      std::string raw = in.ConsumeRandomLengthString(slot_bytes);
      memcpy(rec, raw.data(), raw.size());
    }
  }
  const bool head_ok = in.ConsumeBool();
  header->head.store(head_ok ? records : in.ConsumeIntegral<uint64_t>());

  SessionHarness h;
  const int control = SessionHarness::Memfd(SessionHarness::ControlBlock(), true);
  const int ring = SessionHarness::Memfd(mem, true);
  bool alive = h.Send(SessionHarness::Hello(), {control});
  for (const std::string& m : SessionHarness::OwnModules(1)) alive = alive && h.Send(m);
  alive = alive && h.Send(SessionHarness::ModulesEnd(1, true));
  capture::RingMessage rm;
  memset(&rm, 0, sizeof rm);
  rm.header = SessionHarness::Header(capture::kRing, sizeof rm);
  rm.ring_id = 1;
  rm.bytes = mem.size();
  alive = alive && h.Send(std::string(reinterpret_cast<const char*>(&rm), sizeof rm), {ring});
  FUZZ_CHECK(alive, "a well-formed host was dropped");
  if (in.ConsumeBool()) {
    // The live-allocation table: a header that may lie, and slots naming ids
    // the records above may or may not carry.
    constexpr uint32_t kHeapSlots = 16;
    std::string table(capture::HeapTableBytes(kHeapSlots, 0), '\0');
    auto* th = reinterpret_cast<capture::HeapTableHeader*>(&table[0]);
    th->magic = capture::kHeapTableMagic;
    th->version = capture::kFormatVersion;
    th->slots = in.ConsumeBool() ? kHeapSlots : in.ConsumeIntegral<uint32_t>();
    auto* slots = reinterpret_cast<capture::HeapSlot*>(&table[capture::kHeapTableHeaderBytes]);
    for (uint32_t i = 0; i < kHeapSlots; ++i) {
      slots[i].address.store(in.ConsumeIntegralInRange<uint64_t>(0, 3));
      slots[i].id.store(in.ConsumeIntegralInRange<uint64_t>(0, 16));
    }
    capture::HeapTableMessage tm;
    memset(&tm, 0, sizeof tm);
    tm.header = SessionHarness::Header(capture::kHeapTable, sizeof tm);
    tm.slots = in.ConsumeBool() ? kHeapSlots : in.ConsumeIntegral<uint32_t>();
    tm.filter_slots = 0;
    tm.bytes = in.ConsumeBool() ? table.size() : in.ConsumeIntegral<uint64_t>();
    const int table_fd = SessionHarness::Memfd(table, true);
    // A table that breaks the format drops the host (its ring is still drained).
    h.Send(std::string(reinterpret_cast<const char*>(&tm), sizeof tm), {table_fd});
    close(table_fd);
  }
  h.Poll(false);
  const int64_t samples = h.Close();
  FUZZ_CHECK(samples <= static_cast<int64_t>(kSlots) * 10000, "%lld samples from %u slots",
             static_cast<long long>(samples), kSlots);
  // A record a real handler wrote unwinds: the harness reaches the unwinder.
  FUZZ_CHECK(!head_ok || samples >= intact, "%lld samples from %u intact records",
             static_cast<long long>(samples), intact);
  close(control);
  close(ring);
  return 0;
}
