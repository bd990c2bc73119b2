// Text tables for the CLI: aligned columns, right-aligned numbers.
// Not thread-safe (a value type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stackstream {
namespace cli {

class Table {
 public:
  // "right_aligned"[i] says whether column i is right-aligned.
  Table(std::vector<std::string> header, std::vector<bool> right_aligned);
  void AddRow(std::vector<std::string> row);
  // Columns separated by two spaces; the last column is not padded.
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
  std::vector<bool> right_;
};

// "1.23s", "45.6ms", "789us", "12ns", "2m03s".
std::string FormatDuration(int64_t nanos);
// "12.34%".
std::string FormatPercent(double pct);

}  // namespace cli
}  // namespace stackstream
