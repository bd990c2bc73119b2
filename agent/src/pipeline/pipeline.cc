// The pipeline SampleSink of one host process: the shared symbolizer +
// summary builder + offline writer + sender, wired as its Config asks.
#include "pipeline/pipeline.h"

#include <time.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <string>

#include "format/validate.h"
#include "pipeline/offline_writer.h"
#include "pipeline/pipeline_log.h"
#include "pipeline/pipeline_stats.h"
#include "pipeline/process_identity.h"
#include "pipeline/sender.h"
#include "pipeline/summary_builder.h"
#include "pipeline/symbolizer.h"
#include "pipeline/thread_names.h"

namespace stackstream {
namespace agent {
namespace {

using pipeline::PipelineLog;

int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

v1::Counters ToCounters(const SamplingCounters& d) {
  v1::Counters c;
  c.set_samples_dropped_ring_full(d.samples_dropped_ring_full);
  c.set_unwind_failures(d.unwind_failures);
  c.set_truncated_stacks(d.truncated_stacks);
  c.set_timers_failed(d.timers_failed);
  c.set_reentrant_signals(d.reentrant_signals);
  c.set_agent_reconnects(d.agent_reconnects);
  c.set_samples_lost_agent_restart(d.samples_lost_agent_restart);
  c.set_messages_dropped(d.messages_dropped);
  c.set_modules_rejected(d.modules_rejected);
  c.set_heap_samples_dropped_ring_full(d.heap_samples_dropped_ring_full);
  c.set_heap_samples_untracked_table_full(d.heap_samples_untracked_table_full);
  c.set_heap_samples_dropped_no_thread(d.heap_samples_dropped_no_thread);
  return c;
}

bool AnyCounter(const v1::Counters& c) {
  return c.samples_dropped_ring_full() || c.unwind_failures() || c.truncated_stacks() ||
         c.timers_failed() || c.summaries_dropped_spool_full() || c.samples_dropped_spool_full() ||
         c.reentrant_signals() || c.stacks_dropped_limit() || c.summaries_rejected() ||
         c.agent_reconnects() || c.samples_lost_agent_restart() || c.messages_dropped() ||
         c.modules_rejected() ||
         c.heap_samples_dropped_ring_full() || c.heap_samples_untracked_table_full() ||
         c.heap_samples_dropped_no_thread();
}

// Used when the pipeline cannot start: the session keeps draining, inert.
class NullSink : public SampleSink {
 public:
  void OnSample(const RawSample&) override {}
  void Flush(const SamplingCounters&) override {}
  void Finish(int64_t) override {}
};

class PipelineSink : public SampleSink {
 public:
  PipelineSink(const Config& config, const HostProcess& process, pipeline::Symbolizer* symbolizer)
      : thread_names_(process.pid) {
    v1::ProcessIdentity identity =
        pipeline::MakeProcessIdentity(config, process.pid, process.executable_path,
                                      process.executable_build_id);
    std::vector<v1::Label> labels = pipeline::MakeLabels(config, identity.host());
    builder_ = std::make_unique<pipeline::SummaryBuilder>(
        identity, std::move(labels),
        config.mode == Mode::kWall ? v1::SAMPLING_MODE_WALL : v1::SAMPLING_MODE_CPU,
        config.period_nanos(), symbolizer, &thread_names_, pipeline::SummaryBuilder::Options());
    builder_->SetHeap(config.profile_heap);
    builder_->StartWindow(RealtimeNs());
    if (!config.output.empty()) {
      pipeline::OfflineWriter::Options options;
      options.cpu = config.profile_cpu;
      options.heap = config.profile_heap;
      offline_ = std::make_unique<pipeline::OfflineWriter>(config.output, options);
    }
    if (!config.collectors.empty()) {
      pipeline::Sender::Options options = pipeline::Sender::OptionsFromConfig(config);
      options.agent_instance_id = identity.agent_instance_id();
      sender_ = pipeline::Sender::Create(options);
    }
  }

  void OnSample(const RawSample& sample) override { builder_->Add(sample); }

  void Flush(const SamplingCounters& delta) override { CloseWindow(delta); }

  void Finish(int64_t deadline_ns) override {
    if (sender_ != nullptr) sender_->Shutdown(deadline_ns);
  }

 private:
  void CloseWindow(const SamplingCounters& delta) {
    try {
      stats_.BeginFlush();
      v1::Counters counters = ToCounters(delta);
      if (sender_ != nullptr) sender_->TakeDropCounters(&counters);
      v1::StackSummary summary;
      int64_t samples = builder_->window_samples();
      size_t stacks = builder_->window_stacks();
      builder_->Finish(counters, RealtimeNs(), &summary);
      Status valid = ValidateSummary(summary);
      if (!valid.ok()) {
        PipelineLog("invalid_summary", spdlog::level::err,
                    "stackstream: internal error, summary dropped: {}", valid.ToString());
        return;
      }
      if (offline_ != nullptr) {
        offline_->Add(summary);
        Status s = offline_->Write();
        if (!s.ok()) {
          PipelineLog("offline_write", spdlog::level::warn,
                      "stackstream: cannot write the profile to STACKSTREAM_OUTPUT={} "
                      "(failed writes so far: {}): {}",
                      offline_->path(), offline_->failures(), s.ToString());
        }
      }
      stats_.EndFlush(summary, samples, stacks);
      // Heap summaries always go: their in-use sets are the current snapshot.
      if (sender_ != nullptr &&
          (samples > 0 || summary.sample_sets_size() > 0 || AnyCounter(summary.counters()))) {
        sender_->Enqueue(std::move(summary), samples);
      }
    } catch (const std::exception& e) {
      PipelineLog("flush_exception", spdlog::level::err, "stackstream: flush failed: {}",
                  e.what());
    } catch (...) {
      PipelineLog("flush_exception", spdlog::level::err, "stackstream: flush failed");
    }
  }

  pipeline::ThreadNames thread_names_;
  std::unique_ptr<pipeline::SummaryBuilder> builder_;
  std::unique_ptr<pipeline::OfflineWriter> offline_;
  std::unique_ptr<pipeline::Sender> sender_;
  pipeline::PipelineStats stats_;
};

}  // namespace

std::unique_ptr<SampleSink> CreatePipeline(const Config& config, const HostProcess& process,
                                           pipeline::Symbolizer* symbolizer) {
  try {
    return std::make_unique<PipelineSink>(config, process, symbolizer);
  } catch (const std::exception& e) {
    AgentLog()->error("stackstream: pipeline could not start ({}); samples are discarded",
                      e.what());
  } catch (...) {
    AgentLog()->error("stackstream: pipeline could not start; samples are discarded");
  }
  return std::make_unique<NullSink>();
}

}  // namespace agent
}  // namespace stackstream
