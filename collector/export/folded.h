// Folded (collapsed) stacks: one line per distinct stack,
// "root;frame;...;leaf<space><count>\n", the input of flamegraph.pl,
// speedscope and Pyroscope's legacy ingest. Thread-safe (pure functions).
#pragma once

#include <string>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// Longest frame name kept in a folded line; longer names are cut.
inline constexpr size_t kMaxFoldedFrameBytes = 1024;
// Every folded line stays under this (Pyroscope stops at 64 KiB lines);
// frames nearest the root are dropped (and "[truncated]" put first) to fit.
inline constexpr size_t kMaxFoldedLineBytes = 60000;

// Makes "name" safe inside a folded line: ';' becomes ':', CR/LF/TAB and
// other control characters become ' ', empty becomes "[unknown]", cut at
// kMaxFoldedFrameBytes.
std::string SanitizeFoldedFrame(const std::string& name);

// Folded text of "profile": counts are samples; stacks identical after
// sanitizing are merged; lines sorted; empty stacks and counts <= 0 skipped;
// truncated stacks get a "[truncated]" root.
std::string ExportFolded(const Profile& profile);

}  // namespace exporter
}  // namespace stackstream
