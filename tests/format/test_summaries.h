// Builders of small, valid StackSummary messages for tests.
#pragma once

#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace testing {

// A valid summary: service "demo", two stacks main->work->hot (7 samples) and
// main->idle (3 samples), hot() has an inlined callee "hot_inner", mappings
// for /usr/bin/demo (build-id "abcd1234") and /lib/libc.so.6.
v1::StackSummary MakeValidSummary();

}  // namespace testing
}  // namespace stackstream
