// speedscope JSON (https://www.speedscope.app/file-format-schema.json): one
// "sampled" profile in nanoseconds, shared frames with file/line, samples
// ROOT FIRST, weight = count x period. Thread-safe (pure functions).
#pragma once

#include <string>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// "name" names the file and the profile (e.g. "api cpu"); empty -> mode.
std::string ExportSpeedscope(const Profile& profile, const std::string& name);

}  // namespace exporter
}  // namespace stackstream
