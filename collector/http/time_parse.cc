#include "http/time_parse.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>

namespace stackstream {
namespace collector {

namespace {

constexpr int64_t kNanosPerSecond = 1000000000;
// Times are kept within +-(2^63 ns) ~ year 2262; reject anything past this.
constexpr int64_t kMaxSeconds = 9000000000;  // year 2255

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads digits at "*pos" into "*value" (at most 18 digits). False if none.
bool ReadInt(const std::string& s, size_t* pos, int64_t* value, size_t max_digits = 18) {
  size_t start = *pos;
  int64_t v = 0;
  while (*pos < s.size() && IsDigit(s[*pos])) {
    if (*pos - start >= max_digits) return false;
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
  }
  *value = v;
  return *pos > start;
}

// Reads ".ddd" (any number of digits, first 9 used) into nanoseconds.
void ReadFraction(const std::string& s, size_t* pos, int64_t* nanos) {
  *nanos = 0;
  if (*pos >= s.size() || s[*pos] != '.') return;
  ++*pos;
  int64_t scale = 100000000;
  while (*pos < s.size() && IsDigit(s[*pos])) {
    *nanos += (s[*pos] - '0') * scale;
    scale /= 10;
    ++*pos;
  }
}

bool ReadFixed(const std::string& s, size_t* pos, int digits, int* out) {
  if (*pos + digits > s.size()) return false;
  int v = 0;
  for (int i = 0; i < digits; ++i) {
    char c = s[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += digits;
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// algorithm), so parsing does not depend on the process's time zone.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

Status ParseRfc3339(const std::string& s, int64_t* unix_nanos) {
  const Status bad = Status::InvalidArgument(
      "not a time: \"" + s + "\" (want unix seconds, RFC 3339 or now-15m)");
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!ReadFixed(s, &pos, 4, &year) || pos >= s.size() || s[pos++] != '-' ||
      !ReadFixed(s, &pos, 2, &month) || pos >= s.size() || s[pos++] != '-' ||
      !ReadFixed(s, &pos, 2, &day)) {
    return bad;
  }
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) return bad;
  ++pos;
  if (!ReadFixed(s, &pos, 2, &hour) || pos >= s.size() || s[pos++] != ':' ||
      !ReadFixed(s, &pos, 2, &minute) || pos >= s.size() || s[pos++] != ':' ||
      !ReadFixed(s, &pos, 2, &second)) {
    return bad;
  }
  int64_t frac = 0;
  ReadFraction(s, &pos, &frac);
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 ||
      day > kDays[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0) || hour > 23 ||
      minute > 59 || second > 60) {
    return Status::InvalidArgument("not a valid date/time: \"" + s + "\"");
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos++] == '-' ? -1 : 1;
    int oh, om;
    if (!ReadFixed(s, &pos, 2, &oh) || pos >= s.size() || s[pos++] != ':' ||
        !ReadFixed(s, &pos, 2, &om) || oh > 23 || om > 59) {
      return bad;
    }
    offset = sign * (oh * 3600 + om * 60);
  } else {
    return Status::InvalidArgument("time \"" + s + "\" needs a zone (Z or +hh:mm)");
  }
  if (pos != s.size()) return bad;
  int64_t secs = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                 offset;
  if (secs < 0 || secs > kMaxSeconds) return Status::InvalidArgument("time out of range: \"" + s + "\"");
  *unix_nanos = secs * kNanosPerSecond + frac;
  return Status::OK();
}

}  // namespace

Status ParseDuration(const std::string& text, int64_t* nanos) {
  const Status bad = Status::InvalidArgument("not a duration: \"" + text +
                                             "\" (want e.g. 90, 500ms, 15m, 1h30m, 7d)");
  if (text.empty()) return bad;
  size_t pos = 0;
  int64_t total = 0;
  bool any_unit = false;
  // Bound: ~250 years keeps every sum inside int64.
  const int64_t limit = 250LL * 365 * 86400 * kNanosPerSecond;
  while (pos < text.size()) {
    int64_t n;
    if (!ReadInt(text, &pos, &n, 12)) return bad;
    int64_t frac = 0;
    ReadFraction(text, &pos, &frac);
    if (pos == text.size() && !any_unit) {  // bare seconds
      if (n > limit / kNanosPerSecond) {
        return Status::InvalidArgument("duration too long: \"" + text + "\"");
      }
      total = n * kNanosPerSecond + frac;
      any_unit = true;
      break;
    }
    int64_t unit;
    if (text.compare(pos, 2, "ms") == 0) {
      unit = 1000000;
      pos += 2;
    } else if (text.compare(pos, 2, "us") == 0) {
      unit = 1000;
      pos += 2;
    } else if (text.compare(pos, 2, "ns") == 0) {
      unit = 1;
      pos += 2;
    } else {
      switch (text[pos]) {
        case 's': unit = kNanosPerSecond; break;
        case 'm': unit = 60 * kNanosPerSecond; break;
        case 'h': unit = 3600 * kNanosPerSecond; break;
        case 'd': unit = 86400 * kNanosPerSecond; break;
        case 'w': unit = 7 * 86400 * kNanosPerSecond; break;
        case 'y': unit = 365 * 86400 * kNanosPerSecond; break;
        default: return bad;
      }
      ++pos;
    }
    if (n > limit / unit) return Status::InvalidArgument("duration too long: \"" + text + "\"");
    const int64_t part =
        n * unit + static_cast<int64_t>(static_cast<double>(frac) * unit / kNanosPerSecond);
    if (part > limit - total) return Status::InvalidArgument("duration too long: \"" + text + "\"");
    total += part;
    if (total > limit) return Status::InvalidArgument("duration too long: \"" + text + "\"");
    any_unit = true;
  }
  if (!any_unit) return bad;
  *nanos = total;
  return Status::OK();
}

Status ParseTime(const std::string& text, int64_t now_unix_nanos, int64_t* unix_nanos) {
  if (text.empty()) return Status::InvalidArgument("empty time");
  if (text.size() > 64) return Status::InvalidArgument("time too long");
  if (text.compare(0, 3, "now") == 0) {
    if (text.size() == 3) {
      *unix_nanos = now_unix_nanos;
      return Status::OK();
    }
    char sign = text[3];
    if (sign != '-' && sign != '+') {
      return Status::InvalidArgument("not a time: \"" + text + "\" (want now, now-15m, now+1h)");
    }
    int64_t d;
    Status s = ParseDuration(text.substr(4), &d);
    if (!s.ok()) return Status::InvalidArgument("not a time: \"" + text + "\": " + s.message());
    const int64_t t = sign == '-' ? now_unix_nanos - d : now_unix_nanos + d;
    // The same range as every other form (1970 .. kMaxSeconds).
    if (t < 0 || t / kNanosPerSecond > kMaxSeconds) {
      return Status::InvalidArgument("time out of range: \"" + text + "\"");
    }
    *unix_nanos = t;
    return Status::OK();
  }
  // Unix seconds, optionally fractional.
  size_t pos = 0;
  int64_t secs;
  if (ReadInt(text, &pos, &secs, 12)) {
    int64_t frac = 0;
    ReadFraction(text, &pos, &frac);
    if (pos == text.size()) {
      if (secs > kMaxSeconds) return Status::InvalidArgument("time out of range: \"" + text + "\"");
      *unix_nanos = secs * kNanosPerSecond + frac;
      return Status::OK();
    }
  }
  return ParseRfc3339(text, unix_nanos);
}

std::string FormatRfc3339(int64_t unix_nanos) {
  int64_t secs = unix_nanos / kNanosPerSecond;
  int64_t frac = unix_nanos % kNanosPerSecond;
  if (frac < 0) {
    frac += kNanosPerSecond;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out = buf;
  if (frac != 0) {
    char f[16];
    std::snprintf(f, sizeof(f), ".%09lld", static_cast<long long>(frac));
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  out += "Z";
  return out;
}

int64_t NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace collector
}  // namespace stackstream
