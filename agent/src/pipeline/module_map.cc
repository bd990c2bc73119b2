#include "pipeline/module_map.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace stackstream {
namespace agent {
namespace pipeline {

std::string Module::FallbackName(uint64_t address) const {
  std::string base = path;
  size_t slash = base.rfind('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  if (base.empty()) base = "[unknown]";
  char buf[32];
  snprintf(buf, sizeof buf, "+0x%" PRIx64, FileOffset(address));
  return base + buf;
}

bool ParseMapsLine(const std::string& line, Module* module) {
  // 7f0c1a2b3000-7f0c1a2d5000 r-xp 00022000 fd:01 1234  /usr/lib/libc.so.6
  unsigned long long start = 0, end = 0, offset = 0, inode = 0;
  char perms[8] = {};
  char dev[32] = {};
  int path_pos = 0;
  if (sscanf(line.c_str(), "%llx-%llx %7s %llx %31s %llu %n", &start, &end, perms, &offset, dev,
             &inode, &path_pos) < 6) {
    return false;
  }
  if (strlen(perms) < 3 || perms[2] != 'x') return false;
  module->start = start;
  module->end = end;
  module->file_offset = offset;
  module->inode = inode;
  module->path = path_pos > 0 && static_cast<size_t>(path_pos) <= line.size()
                     ? line.substr(path_pos)
                     : std::string();
  while (!module->path.empty() && (module->path.back() == '\n' || module->path.back() == ' ')) {
    module->path.pop_back();
  }
  return true;
}

std::string ReadBuildId(const std::string& path) {
  if (path.empty() || path[0] != '/') return "";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  elf_version(EV_CURRENT);
  std::string result;
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  if (elf != nullptr && elf_kind(elf) == ELF_K_ELF) {
    size_t phnum = 0;
    if (elf_getphdrnum(elf, &phnum) == 0) {
      for (size_t i = 0; i < phnum && result.empty(); ++i) {
        GElf_Phdr phdr;
        if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr || phdr.p_type != PT_NOTE) {
          continue;
        }
        Elf_Data* data = elf_getdata_rawchunk(elf, phdr.p_offset, phdr.p_filesz,
                                              phdr.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
        if (data == nullptr) continue;
        size_t offset = 0;
        GElf_Nhdr nhdr;
        size_t name_offset = 0, desc_offset = 0;
        while (offset < data->d_size &&
               (offset = gelf_getnote(data, offset, &nhdr, &name_offset, &desc_offset)) > 0) {
          const char* base = static_cast<const char*>(data->d_buf);
          if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
              memcmp(base + name_offset, "GNU", 4) == 0) {
            static const char kHex[] = "0123456789abcdef";
            const unsigned char* desc = reinterpret_cast<const unsigned char*>(base + desc_offset);
            for (size_t b = 0; b < nhdr.n_descsz; ++b) {
              result.push_back(kHex[desc[b] >> 4]);
              result.push_back(kHex[desc[b] & 15]);
            }
            break;
          }
        }
      }
    }
  }
  if (elf != nullptr) elf_end(elf);
  close(fd);
  return result;
}

ModuleMap::ModuleMap(std::string maps_path) : maps_path_(std::move(maps_path)) {}

Status ModuleMap::Refresh() {
  std::ifstream in(maps_path_);
  if (!in) return Status::IOError("cannot read " + maps_path_);
  ++refresh_count_;
  std::vector<std::shared_ptr<const Module>> fresh;
  std::string line;
  size_t old_i = 0;
  while (std::getline(in, line)) {
    Module m;
    if (!ParseMapsLine(line, &m)) continue;
    // Keep the old object when the mapping is unchanged (maps are sorted).
    while (old_i < modules_.size() && modules_[old_i]->start < m.start) ++old_i;
    if (old_i < modules_.size()) {
      const Module& o = *modules_[old_i];
      if (o.start == m.start && o.end == m.end && o.file_offset == m.file_offset &&
          o.inode == m.inode && o.path == m.path) {
        fresh.push_back(modules_[old_i]);
        continue;
      }
    }
    auto key = std::make_pair(m.inode, m.path);
    auto it = build_ids_.find(key);
    if (it == build_ids_.end()) {
      if (build_ids_.size() > 4096) build_ids_.clear();
      it = build_ids_.emplace(key, ReadBuildId(m.path)).first;
    }
    m.build_id = it->second;
    fresh.push_back(std::make_shared<const Module>(std::move(m)));
  }
  std::sort(fresh.begin(), fresh.end(),
            [](const auto& a, const auto& b) { return a->start < b->start; });
  modules_.swap(fresh);
  return Status::OK();
}

std::shared_ptr<const Module> ModuleMap::Find(uint64_t address) const {
  auto it = std::upper_bound(modules_.begin(), modules_.end(), address,
                             [](uint64_t a, const auto& m) { return a < m->start; });
  if (it == modules_.begin()) return nullptr;
  --it;
  if (address < (*it)->end) return *it;
  return nullptr;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
