// Async-signal-safe zone (CopyOtelThreadContext): see the contract in
// otel_thread_context.h.
#include "capture/otel_thread_context.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>

namespace stackstream {
namespace agent {

namespace {

// This thread's `otel_thread_ctx_v1` (the address of the SDK's TLS pointer).
__thread const void* const* t_otel_slot __attribute__((tls_model("initial-exec"))) = nullptr;

struct OtelRecordHead {  // the record's fixed part (OTEP #4947), byte-packed
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t valid;
  uint8_t trace_flags;
  uint16_t attrs_data_size;
};
static_assert(sizeof(OtelRecordHead) == 28, "OTEP #4947 record head is 28 bytes");

bool HasKey(const capture::SampleRecord* rec, const char* key, uint8_t size) {
  for (uint32_t i = 0; i < rec->label_count; ++i) {
    const capture::RecordLabel& l = rec->labels[i];
    if (l.key_size != size) continue;
    bool same = true;
    for (uint8_t k = 0; k < size && same; ++k) same = l.key[k] == key[k];
    if (same) return true;
  }
  return false;
}

void AddHex(capture::SampleRecord* rec, const char* key, uint8_t key_size, const uint8_t* bytes,
            int n) {
  if (rec->label_count >= capture::kMaxSampleLabels || HasKey(rec, key, key_size)) return;
  static const char kHex[] = "0123456789abcdef";
  capture::RecordLabel* l = &rec->labels[rec->label_count++];
  l->key_size = key_size;
  for (uint8_t k = 0; k < key_size; ++k) l->key[k] = key[k];
  for (int i = 0; i < n; ++i) {
    l->value[2 * i] = kHex[bytes[i] >> 4];
    l->value[2 * i + 1] = kHex[bytes[i] & 15];
  }
  l->value_size = static_cast<uint8_t>(2 * n);
}

}  // namespace

void BindOtelThreadContext() {
  t_otel_slot = static_cast<const void* const*>(dlsym(RTLD_DEFAULT, "otel_thread_ctx_v1"));
}

void CopyOtelThreadContext(capture::SampleRecord* rec) {
  const void* const* slot = t_otel_slot;
  if (slot == nullptr) return;
  const void* record = __atomic_load_n(slot, __ATOMIC_RELAXED);  // this thread's own TLS
  if (record == nullptr) return;
  OtelRecordHead head;
  iovec local{&head, sizeof head};
  iovec remote{const_cast<void*>(record), sizeof head};
  const long n = syscall(SYS_process_vm_readv, static_cast<long>(syscall(SYS_getpid)), &local, 1L,
                         &remote, 1L, 0L);
  if (n != static_cast<long>(sizeof head) || head.valid != 1) return;
  bool any = false;
  for (uint8_t b : head.trace_id) any = any || b != 0;
  if (!any) return;
  AddHex(rec, "trace_id", 8, head.trace_id, 16);
  AddHex(rec, "span_id", 7, head.span_id, 8);
}

}  // namespace agent
}  // namespace stackstream
