// The refusal messages of `stackstream attach` for the permission cases this
// machine's kernel cannot produce for real (it ignores perf_event_paranoid 3
// and has no Yama): each names the setting, its value and what to change.
// The real refusals (another user's process, seccomp, a missing pid) are
// exercised through the CLI by test_attach.py's "errors" case.
#include <errno.h>

#include <gtest/gtest.h>

#include "attach/attach_error.h"

namespace stackstream {
namespace agent {
namespace {

AttachFacts Unprivileged() {
  AttachFacts f;
  f.uid = 1000;
  f.target_uid = 1000;
  return f;
}

TEST(AttachErrorTest, ParanoidAboveTwoNamesTheSysctlAndTheValueNeeded) {
  AttachFacts f = Unprivileged();
  f.perf_event_paranoid = 3;
  const std::string m = ExplainAttachError(42, EACCES, "perf_event_open", f);
  EXPECT_NE(m.find("not allowed to attach to pid 42"), std::string::npos) << m;
  EXPECT_NE(m.find("kernel.perf_event_paranoid is 3"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl -w kernel.perf_event_paranoid=2"), std::string::npos) << m;
  EXPECT_NE(m.find("CAP_PERFMON"), std::string::npos) << m;
}

TEST(AttachErrorTest, ParanoidDoesNotBlameWhenThePerfmonCapabilityIsHeld) {
  AttachFacts f = Unprivileged();
  f.perf_event_paranoid = 3;
  f.perfmon = true;
  const std::string m = ExplainAttachError(42, EACCES, "perf_event_open", f);
  EXPECT_EQ(m.find("kernel.perf_event_paranoid is 3"), std::string::npos) << m;
  EXPECT_NE(m.find("missing ptrace rights over pid 42"), std::string::npos) << m;
}

TEST(AttachErrorTest, PtraceScopeTwoAndThreeSayWhatLowersThem) {
  AttachFacts f = Unprivileged();
  f.ptrace_scope = "2";
  std::string m = ExplainAttachError(7, EPERM, "perf_event_open", f);
  EXPECT_NE(m.find("kernel.yama.ptrace_scope is 2"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl -w kernel.yama.ptrace_scope=1"), std::string::npos) << m;
  f.ptrace_scope = "3";
  m = ExplainAttachError(7, EPERM, "perf_event_open", f);
  EXPECT_NE(m.find("kernel.yama.ptrace_scope is 3"), std::string::npos) << m;
  EXPECT_NE(m.find("reboot"), std::string::npos) << m;
}

TEST(AttachErrorTest, AnotherUsersProcessNamesBothUids) {
  AttachFacts f = Unprivileged();
  f.target_uid = 0;
  const std::string m = ExplainAttachError(9, EACCES, "perf_event_open", f);
  EXPECT_NE(m.find("missing ptrace rights: pid 9 runs as uid 0 and you are uid 1000"),
            std::string::npos)
      << m;
  f.ptrace_cap = true;  // CAP_SYS_PTRACE overrides the uid check
  EXPECT_EQ(ExplainAttachError(9, EACCES, "perf_event_open", f).find("runs as uid 0"),
            std::string::npos);
}

TEST(AttachErrorTest, SeccompComesFirstAndNamesTheContainerFix) {
  AttachFacts f = Unprivileged();
  f.seccomp = "2";
  f.perf_event_paranoid = 3;
  const std::string m = ExplainAttachError(5, EPERM, "perf_event_open", f);
  EXPECT_NE(m.find("seccomp filter"), std::string::npos) << m;
  EXPECT_NE(m.find("seccomp=unconfined"), std::string::npos) << m;
  EXPECT_EQ(m.find("perf_event_paranoid"), std::string::npos) << m;
}

TEST(AttachErrorTest, MissingPidAndMlockLimit) {
  EXPECT_EQ(ExplainAttachError(3, ESRCH, "perf_event_open", Unprivileged()),
            "no process with pid 3 (it may have exited)");
  const std::string m = ExplainAttachError(3, EPERM, "mmap", Unprivileged());
  EXPECT_NE(m.find("kernel.perf_event_mlock_kb"), std::string::npos) << m;
  EXPECT_NE(m.find("RLIMIT_MEMLOCK"), std::string::npos) << m;
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
