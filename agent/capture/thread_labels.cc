// Async-signal-safe zone: see the contract in thread_labels.h.
#include "capture/thread_labels.h"

#include <errno.h>

#include <cstring>

namespace stackstream {
namespace agent {

namespace {

using capture::kMaxLabelKeyBytes;
using capture::kMaxLabelValueBytes;
using capture::kMaxSampleLabels;
using capture::RecordLabel;

struct LabelSlot {
  RecordLabel version[2];
  uint8_t active;  // the version a reader takes; written last, in one store
};

__thread LabelSlot t_labels[kMaxSampleLabels] __attribute__((tls_model("initial-exec")));

// Length of a valid key, or 0.
inline size_t KeyLength(const char* key) {
  if (key == nullptr) return 0;
  size_t n = 0;
  while (key[n] != '\0') {
    if (n >= kMaxLabelKeyBytes || !capture::IsLabelKeyChar(static_cast<unsigned char>(key[n]), n == 0)) {
      return 0;
    }
    ++n;
  }
  return n;
}

// True when the NUL-terminated "key" equals the label's key.
inline bool SameKey(const RecordLabel& l, const char* key) {
  const size_t n = l.key_size;
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (l.key[i] != key[i]) return false;  // also stops at key's NUL
  }
  return key[n] == '\0';
}

inline const RecordLabel& Current(const LabelSlot& slot) {
  return slot.version[__atomic_load_n(&slot.active, __ATOMIC_RELAXED) & 1];
}

// The slot holding "key" (a set key is valid: no need to check it again),
// or -1.
inline int FindKey(const char* key) {
  for (int i = 0; i < kMaxSampleLabels; ++i) {
    if (SameKey(Current(t_labels[i]), key)) return i;
  }
  return -1;
}

// Publishes the slot's other version (already written).
inline void Flip(LabelSlot* slot) {
  __atomic_signal_fence(__ATOMIC_RELEASE);  // the version's bytes before the index
  __atomic_store_n(&slot->active, static_cast<uint8_t>(slot->active ^ 1), __ATOMIC_RELAXED);
}

}  // namespace

int SetThreadLabel(const char* key, const char* value) {
  if (key == nullptr || value == nullptr) {
    errno = EINVAL;
    return -1;
  }
  int i = FindKey(key);
  size_t key_size = i >= 0 ? Current(t_labels[i]).key_size : KeyLength(key);
  if (key_size == 0) {
    errno = EINVAL;
    return -1;
  }
  if (i < 0) {
    for (int j = 0; j < kMaxSampleLabels && i < 0; ++j) {
      if (Current(t_labels[j]).key_size == 0) i = j;
    }
    if (i < 0) {
      errno = ENOSPC;
      return -1;
    }
  }
  // Fill the version no reader takes, checking the value as it is copied; a
  // bad value leaves the published one as it was.
  LabelSlot* slot = &t_labels[i];
  RecordLabel* next = &slot->version[(slot->active & 1) ^ 1];
  size_t n = 0;
  for (; value[n] != '\0'; ++n) {
    const unsigned char c = static_cast<unsigned char>(value[n]);
    if (n >= kMaxLabelValueBytes || !capture::IsLabelValueChar(c)) {
      errno = EINVAL;
      return -1;
    }
    next->value[n] = static_cast<char>(c);
  }
  for (size_t k = 0; k < key_size; ++k) next->key[k] = key[k];
  next->key_size = static_cast<uint8_t>(key_size);
  next->value_size = static_cast<uint8_t>(n);
  Flip(slot);
  return 0;
}

int ClearThreadLabel(const char* key) {
  if (key == nullptr) {
    errno = EINVAL;
    return -1;
  }
  const int i = FindKey(key);
  if (i < 0) {
    if (KeyLength(key) != 0) return 0;  // not set
    errno = EINVAL;
    return -1;
  }
  LabelSlot* slot = &t_labels[i];
  slot->version[(slot->active & 1) ^ 1].key_size = 0;
  Flip(slot);
  return 0;
}

void CopyThreadLabels(capture::SampleRecord* rec) {
  uint32_t n = 0;
  for (int i = 0; i < kMaxSampleLabels; ++i) {
    const LabelSlot& slot = t_labels[i];
    const uint8_t active = __atomic_load_n(&slot.active, __ATOMIC_RELAXED) & 1;
    __atomic_signal_fence(__ATOMIC_ACQUIRE);
    const RecordLabel& l = slot.version[active];
    if (l.key_size == 0) continue;
    RecordLabel* out = &rec->labels[n++];
    out->key_size = l.key_size;
    out->value_size = l.value_size;
    memcpy(out->key, l.key, kMaxLabelKeyBytes);
    memcpy(out->value, l.value, kMaxLabelValueBytes);
  }
  rec->label_count = n;
}

}  // namespace agent
}  // namespace stackstream
