// ClientSession: stackstream-agent's side of one connected host process.
// It reads the host's messages (capture_format.h), maps the control block
// and the rings it was handed, keeps the host's module sets per generation,
// drains the rings (unwinding each copy against the module files), feeds the
// host's pipeline (summaries, sender, offline file) and closes windows every
// flush_ms. When the host says goodbye or its socket closes (exit, crash,
// SIGKILL), the session drains what is left, closes the last window and
// finishes delivery; the rings stay mapped until then, so nothing the host
// captured is lost with it.
//
// Everything a host sends is untrusted: sizes, magic numbers, versions and
// memfd seals are checked; a host that sends garbage is disconnected (and
// its rings still drained), never able to crash the agent.
//
// Thread-safety: not thread-safe; one AgentServer thread drives all sessions.
// Finish() may run on another thread once Done() (nothing else touches the
// session then).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_format.h"
#include "capture/sample_ring.h"
#include "config.h"
#include "pipeline/pipeline.h"
#include "sample_sink.h"

namespace stackstream {
namespace agent {

class ElfFile;
class PeerFiles;
class ElfFileCache;
class ModuleSet;
class RemoteUnwinder;
namespace pipeline {
class Symbolizer;
}  // namespace pipeline

// What sessions share: the module-file cache and the symbolizer (both keyed
// by file, so hundreds of forked processes of one program parse it once).
struct SharedState {
  std::shared_ptr<ElfFileCache> files;
  std::unique_ptr<pipeline::Symbolizer> symbolizer;
  // The node daemon's --collector: used by hosts that set no
  // STACKSTREAM_COLLECTOR of their own.
  std::vector<std::string> default_collectors;
  // Builds a session's pipeline; empty means CreatePipeline (the real one).
  // Tests and fuzz targets put a sink of their own here to see the samples.
  std::function<std::unique_ptr<SampleSink>(const Config&, const HostProcess&)> make_sink;
};

class ClientSession {
 public:
  // Takes ownership of the connected socket "fd". The peer's pid, uid and
  // gid come from SO_PEERCRED (the kernel's word, not the host's).
  ClientSession(int fd, pid_t peer_pid, uid_t peer_uid, gid_t peer_gid, SharedState* shared);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  int fd() const { return fd_; }
  // The host's socket is still open (a closed one is not polled any more).
  bool connected() const { return connected_; }
  pid_t pid() const { return pid_; }
  uid_t peer_uid() const { return peer_uid_; }
  const std::string& name() const { return name_; }
  // The host's stderr (from its hello), or -1: where a private helper logs.
  int host_stderr() const { return host_stderr_; }
  const Config* config() const { return have_hello_ ? &config_ : nullptr; }

  // Reads every pending message (non-blocking). Returns false once the host
  // is gone (EOF, error) or misbehaved; the session then only drains.
  bool ReadMessages();

  // Drains the rings, and closes a window when flush_ms has passed or a
  // flush was asked for. "final" (after goodbye / EOF): drain everything,
  // close the last window, answer goodbye.
  void Poll(int64_t now_ns, bool final);

  // The host is gone (or said goodbye and the last window is closed).
  bool Done() const { return done_; }
  bool goodbye() const { return goodbye_; }

  // Delivers what is pending (sender) until "deadline_ns". After Done().
  void Finish(int64_t deadline_ns);

  // Samples taken out of the rings so far (for tests and stats).
  int64_t samples() const { return samples_; }

 private:
  struct Ring {
    capture::SampleRing ring;
    void* base = nullptr;
    uint64_t bytes = 0;
    uint64_t seen_ring_full = 0, seen_bad_stack = 0, seen_reentrant = 0;
    uint64_t tail_at_attach = 0;  // records an earlier agent consumed
  };

  bool HandleMessage(const char* data, size_t len, int* fds, int nfds);
  bool HandleHello(const char* data, size_t len, int* fds, int nfds);
  bool HandleRing(const char* data, size_t len, int* fds, int nfds);
  bool HandleModule(const char* data, size_t len, bool gone);
  bool HandleModulesEnd(const char* data, size_t len);
  bool HandleHeapTable(const char* data, size_t len, int* fds, int nfds);
  // A kRecordAlloc record, unwound into pcs_[0, depth): drops the hook's own
  // frames, weights it and hands it to the sink; remembers it while live.
  void OnAllocRecord(const capture::SampleRecord& rec, const ModuleSet* set, int depth,
                     bool truncated);
  // Before a flush: forgets sampled allocations no longer in the host's live
  // table and replays the others as kInuse samples.
  void ReplayLiveAllocations();
  void StartPipeline();
  void Drain(bool final);
  const ModuleSet* SetFor(uint64_t generation, bool final, bool* wait);
  SamplingCounters TakeCounters();
  void CloseWindow();
  void SendGoodbyeDone();

  int fd_;
  pid_t peer_pid_;
  uid_t peer_uid_;
  gid_t peer_gid_;
  SharedState* shared_;
  std::string name_;         // "service[pid]" for logs
  bool connected_ = true;    // the socket is still open
  bool have_hello_ = false;
  bool goodbye_ = false;     // the host said goodbye
  bool goodbye_answered_ = false;
  bool flush_requested_ = false;
  bool done_ = false;
  pid_t pid_ = 0;
  std::string exe_;
  std::string root_;         // prefix for module files ("/proc/PID/root" across mount namespaces)
  int host_stderr_ = -1;
  int output_fd_ = -1;       // the host's descriptor STACKSTREAM_OUTPUT names
  Config config_;

  capture::ControlBlock* control_ = nullptr;
  bool continues_other_ = false;  // a reconnect: an earlier agent had this host
  bool lost_counted_ = false;
  uint64_t flushed_base_ = 0;     // the earlier agent's agent_records_flushed
  uint64_t seen_timers_failed_ = 0, seen_rings_failed_ = 0, seen_messages_dropped_ = 0,
           seen_reconnects_ = 0;

  std::map<uint32_t, Ring> rings_;
  uint64_t ring_bytes_ = 0;       // mapped for this host
  int64_t rings_refused_ = 0;     // over kMaxRingBytesPerHost, not yet reported

  // Heap profiling: the host's live table (kHeapTable) and the sampled
  // allocations the agent has seen that were still live at the last look.
  struct LiveAlloc {
    std::vector<uint64_t> pcs;
    bool truncated = false;
    int32_t tid = 0;
    int64_t objects = 0, bytes = 0;
    std::shared_ptr<const ModuleSet> modules;
  };
  capture::HeapTableHeader* heap_table_ = nullptr;
  uint64_t heap_table_bytes_ = 0;
  std::unordered_map<uint64_t, LiveAlloc> live_;  // by table id
  uint64_t seen_heap_ring_full_ = 0, seen_heap_table_full_ = 0, seen_heap_no_thread_ = 0,
           seen_heap_reentrant_ = 0;
  // Modules: the messages of the set being built, and the sets by generation.
  using ModuleKey = std::pair<uint64_t, std::string>;  // (load bias, path)
  std::map<ModuleKey, std::string> current_modules_;
  std::map<ModuleKey, std::string> delta_add_;  // of the generation being received
  std::vector<ModuleKey> delta_gone_;
  std::map<uint64_t, std::shared_ptr<const ModuleSet>> sets_;
  uint64_t last_generation_ = 0;
  // A host in another mount namespace: its module files, opened while it lives.
  std::vector<std::shared_ptr<const ElfFile>> held_files_;
  int64_t modules_rejected_ = 0;       // not yet reported in a window
  std::unique_ptr<PeerFiles> peer_files_;  // after hello

  std::unique_ptr<RemoteUnwinder> unwinder_;
  std::unique_ptr<SampleSink> sink_;
  std::vector<uint64_t> pcs_;
  std::vector<uint8_t> stack_copy_;
  std::vector<SampleLabel> labels_;  // the current sample's labels (scratch)
  SamplingCounters pending_;
  int64_t next_flush_ns_ = 0;
  int64_t records_consumed_ = 0;
  int64_t samples_ = 0;
};

}  // namespace agent
}  // namespace stackstream
