#include "unwind/module_set.h"

#include <elf.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace stackstream {
namespace agent {
namespace {

constexpr size_t kMaxModules = 1 << 16;

std::atomic<uint64_t> g_next_serial{1};

bool Overflows(uint64_t a, uint64_t b) { return a + b < a; }

}  // namespace

std::string HexString(const uint8_t* bytes, size_t size) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 15]);
  }
  return out;
}

const capture::ModuleSegment* LoadedModule::SegmentOf(uint64_t address) const {
  for (const capture::ModuleSegment& s : segments) {
    if (address >= s.start && address - s.start < s.mem_size) return &s;
  }
  return nullptr;
}

bool LoadedModule::SameAs(const LoadedModule& o) const {
  if (path != o.path || build_id != o.build_id || load_bias != o.load_bias || dev != o.dev ||
      inode != o.inode || eh_frame_hdr != o.eh_frame_hdr || segments.size() != o.segments.size()) {
    return false;
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    const capture::ModuleSegment& a = segments[i];
    const capture::ModuleSegment& b = o.segments[i];
    if (a.start != b.start || a.mem_size != b.mem_size || a.file_offset != b.file_offset ||
        a.file_size != b.file_size || a.flags != b.flags) {
      return false;
    }
  }
  return true;
}

bool ModuleSet::ParseMessage(const void* data, size_t size, LoadedModule* out) {
  using capture::ModuleMessage;
  if (data == nullptr || size < sizeof(ModuleMessage) || size > capture::kMaxMessageBytes) {
    return false;
  }
  ModuleMessage m;
  memcpy(&m, data, sizeof m);
  if (m.header.magic != capture::kMessageMagic || m.header.type != capture::kModule ||
      m.header.version != capture::kFormatVersion || m.header.size != size) {
    return false;
  }
  if (m.path_bytes < 2 || sizeof m + m.path_bytes != size) return false;
  const char* path = static_cast<const char*>(data) + sizeof m;
  if (path[m.path_bytes - 1] != '\0' || strlen(path) != m.path_bytes - 1 ||
      (path[0] != '/' && strcmp(path, capture::kVdsoPath) != 0)) {
    return false;
  }
  if (m.build_id_size > static_cast<uint32_t>(capture::kMaxBuildIdBytes)) return false;
  if (m.segment_count == 0 || m.segment_count > static_cast<uint32_t>(capture::kMaxModuleSegments)) {
    return false;
  }
  LoadedModule mod;
  mod.path.assign(path, m.path_bytes - 1);
  mod.build_id = HexString(m.build_id, m.build_id_size);
  mod.load_bias = m.load_bias;
  mod.dev = m.dev;
  mod.inode = m.inode;
  bool have_exec = false;
  for (uint32_t i = 0; i < m.segment_count; ++i) {
    const capture::ModuleSegment& s = m.segments[i];
    if (s.mem_size == 0 || Overflows(s.start, s.mem_size) || s.file_size > s.mem_size ||
        Overflows(s.file_offset, s.file_size)) {
      return false;
    }
    mod.segments.push_back(s);
    if (s.flags & PF_X) {
      if (!have_exec || s.start < mod.start) {
        mod.start = s.start;
        mod.exec_file_offset = s.file_offset;
      }
      mod.end = std::max(mod.end, s.start + s.mem_size);
      have_exec = true;
    }
  }
  // .eh_frame_hdr must lie in one of the module's own segments (else: unused).
  const capture::ModuleSegment* hdr = mod.SegmentOf(m.eh_frame_hdr);
  if (m.eh_frame_hdr != 0 && hdr != nullptr) {
    mod.eh_frame_hdr = m.eh_frame_hdr;
    uint64_t room = hdr->start + hdr->mem_size - m.eh_frame_hdr;
    mod.eh_frame_hdr_size = std::min(m.eh_frame_hdr_size, room);
  }
  *out = std::move(mod);
  return true;
}

ModuleSet::ModuleSet(std::vector<LoadedModule> modules, std::string root)
    : modules_(std::move(modules)), root_(std::move(root)), serial_(g_next_serial.fetch_add(1)) {
  for (uint32_t m = 0; m < modules_.size(); ++m) {
    for (uint32_t s = 0; s < modules_[m].segments.size(); ++s) {
      const capture::ModuleSegment& seg = modules_[m].segments[s];
      ranges_.push_back(Range{seg.start, seg.start + seg.mem_size, m, s});
    }
  }
  std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) {
    return a.start != b.start ? a.start < b.start : a.module < b.module;
  });
  // Overlaps do not happen in a real process; from a confused or hostile
  // host, keep the first so that lookups stay a binary search.
  std::vector<Range> clean;
  clean.reserve(ranges_.size());
  for (const Range& r : ranges_) {
    if (!clean.empty() && r.start < clean.back().end) continue;
    clean.push_back(r);
  }
  ranges_.swap(clean);
}

std::shared_ptr<const ModuleSet> ModuleSet::FromModules(std::vector<LoadedModule> modules,
                                                        const std::string& root) {
  if (modules.size() > kMaxModules) modules.resize(kMaxModules);
  return std::shared_ptr<const ModuleSet>(new ModuleSet(std::move(modules), root));
}

std::shared_ptr<const ModuleSet> ModuleSet::FromMessages(const std::vector<std::string>& raw_messages,
                                                         const std::string& root, int* rejected) {
  std::vector<LoadedModule> modules;
  modules.reserve(std::min(raw_messages.size(), kMaxModules));
  int bad = 0;
  for (const std::string& raw : raw_messages) {
    LoadedModule mod;
    if (modules.size() >= kMaxModules || !ParseMessage(raw.data(), raw.size(), &mod)) {
      ++bad;
      continue;
    }
    modules.push_back(std::move(mod));
  }
  if (rejected != nullptr) *rejected = bad;
  return FromModules(std::move(modules), root);
}

ModuleSet::Hit ModuleSet::Lookup(uint64_t address) const {
  Hit hit;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                             [](uint64_t a, const Range& r) { return a < r.start; });
  if (it == ranges_.begin()) return hit;
  --it;
  if (address >= it->end) return hit;
  hit.module = &modules_[it->module];
  hit.segment = &hit.module->segments[it->segment];
  hit.index = it->module;
  return hit;
}

const LoadedModule* ModuleSet::Find(uint64_t address) const { return Lookup(address).module; }

}  // namespace agent
}  // namespace stackstream
