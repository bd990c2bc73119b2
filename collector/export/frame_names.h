// Helpers shared by the exporters to turn a Profile's frames into the names
// users see. Thread-safe (pure functions).
#pragma once

#include <string>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// Root frame added above a stack the agent cut at its max depth.
inline constexpr char kTruncatedFrame[] = "[truncated]";
// Name used for a frame whose function name is empty.
inline constexpr char kUnknownFrame[] = "[unknown]";

// The display name of "frame": its function, or kUnknownFrame when empty.
const std::string& FrameName(const Frame& frame);

// The names of "sample"'s frames ROOT FIRST, with kTruncatedFrame as the root
// when the sample is truncated. Out-of-range frame indexes become
// kUnknownFrame (a Profile from storage is trusted, but never crash).
std::vector<std::string> RootFirstNames(const Profile& profile, const ProfileSample& sample);

}  // namespace exporter
}  // namespace stackstream
