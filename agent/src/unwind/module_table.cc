#include "unwind/module_table.h"

#include <elf.h>
#include <link.h>

#include <algorithm>

namespace stackstream {
namespace agent {
namespace unwind_internal {

namespace {

struct BuildState {
  std::vector<Module>* modules;
  std::vector<Segment>* segments;
  uint64_t adds = 0;
  uint64_t subs = 0;
};

int Collect(struct dl_phdr_info* info, size_t size, void* data) {
  auto* st = static_cast<BuildState*>(data);
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    st->adds = info->dlpi_adds;
    st->subs = info->dlpi_subs;
  }
  Module m;
  m.name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  m.load_bias = info->dlpi_addr;
  const uint32_t index = static_cast<uint32_t>(st->modules->size());
  bool any = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && ph.p_memsz > 0) {
      Segment s;
      s.start = info->dlpi_addr + ph.p_vaddr;
      s.end = s.start + ph.p_memsz;
      s.flags = ph.p_flags;
      s.module = index;
      st->segments->push_back(s);
      any = true;
    } else if (ph.p_type == PT_GNU_EH_FRAME) {
      m.eh_frame_hdr = info->dlpi_addr + ph.p_vaddr;
      m.eh_frame_hdr_size = ph.p_memsz;
    }
  }
  if (any) st->modules->push_back(std::move(m));
  return 0;
}

}  // namespace

void ModuleTable::Build() {
  modules_.clear();
  segments_.clear();
  BuildState st{&modules_, &segments_};
  dl_iterate_phdr(Collect, &st);
  adds_ = st.adds;
  subs_ = st.subs;
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.start < b.start; });
  // Drop overlaps (should not happen) so Find() can binary search.
  std::vector<Segment> clean;
  clean.reserve(segments_.size());
  for (const Segment& s : segments_) {
    if (!clean.empty() && s.start < clean.back().end) continue;
    clean.push_back(s);
  }
  segments_.swap(clean);
}

const Segment* ModuleTable::Find(uint64_t addr) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                             [](uint64_t a, const Segment& s) { return a < s.start; });
  if (it == segments_.begin()) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

}  // namespace unwind_internal
}  // namespace agent
}  // namespace stackstream
