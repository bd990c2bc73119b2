#include "cli/table.h"

#include <algorithm>
#include <cstdio>

namespace stackstream {
namespace cli {

namespace {

// Display width: counts UTF-8 code points, not bytes.
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

Table::Table(std::vector<std::string> header, std::vector<bool> right_aligned)
    : right_(std::move(right_aligned)) {
  rows_.push_back(std::move(header));
}

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Table::Render() const {
  size_t columns = 0;
  for (const auto& r : rows_) columns = std::max(columns, r.size());
  std::vector<size_t> width(columns, 0);
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], Width(r[i]));
  }
  std::string out;
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < columns; ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      const size_t pad = width[i] - Width(cell);
      const bool right = i < right_.size() && right_[i];
      if (i > 0) line += "  ";
      if (right) line.append(pad, ' ');
      line += cell;
      if (!right && i + 1 < columns) line.append(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::string FormatDuration(int64_t nanos) {
  char buf[64];
  const double n = static_cast<double>(nanos);
  if (nanos >= 60LL * 1000000000) {
    const int64_t secs = nanos / 1000000000;
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(secs / 60),
                  static_cast<long long>(secs % 60));
  } else if (nanos >= 1000000000) {
    std::snprintf(buf, sizeof(buf), "%.2fs", n / 1e9);
  } else if (nanos >= 1000000) {
    std::snprintf(buf, sizeof(buf), "%.1fms", n / 1e6);
  } else if (nanos >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.0fus", n / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldns", static_cast<long long>(nanos));
  }
  return buf;
}

std::string FormatPercent(double pct) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", pct);
  return buf;
}

}  // namespace cli
}  // namespace stackstream
