// IngestServer over real gRPC on 127.0.0.1:0 with a SqliteStore: one test per
// rejection rule of VALIDATION.md, idempotent resend, auth, size limits,
// compression, TLS, and the mapping of storage failures.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "ingest/ingest_server.h"
#include "ingest_summaries.h"
#include "stackstream/v1/ingest.grpc.pb.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace testing {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kT0 = 1700000000LL * 1000000000LL;

std::string TempDir() {
  char tmpl[] = "/tmp/stackstream-ingest-test-XXXXXX";
  return mkdtemp(tmpl);
}

SummaryLimits SmallLimits() {
  SummaryLimits l;
  l.max_strings = 1000;
  l.max_string_bytes = 1024;
  l.max_stacks = 100;
  l.max_locations = 500;
  l.max_depth = 64;
  l.max_labels = 8;
  l.max_label_key_bytes = 32;
  l.max_label_value_bytes = 64;
  return l;
}

v1::StackSummary Valid(const std::string& instance = "inst-1") {
  return MakeSummary(instance, "demo", kT0, {{"main;work;hot", 7}, {"main;idle", 3}});
}

v1::IngestRequest Request(uint64_t seq, const v1::StackSummary& s) {
  v1::IngestRequest r;
  r.set_agent_instance_id(s.process().agent_instance_id());
  r.set_sequence(seq);
  *r.mutable_summary() = s;
  return r;
}

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    Status s = OpenStore("sqlite:" + dir_ + "/profiles.db", &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (server_) server_->Stop(0);
    server_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void StartServer(IngestOptions o = {}, Store* store = nullptr) {
    o.listen = "127.0.0.1:0";
    if (o.limits.max_strings == SummaryLimits().max_strings) o.limits = SmallLimits();
    server_ = std::make_unique<IngestServer>(store ? store : store_.get(), &metrics_, o);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_GT(server_->port(), 0);
    if (!o.tls_cert.empty()) return;
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::IngestService::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }
  grpc::Status Push(const v1::IngestRequest& req, v1::IngestAck* ack,
                    const std::string& token = "") {
    auto ctx = Context(token);
    return stub_->Push(ctx.get(), req, ack);
  }
  // Sends "reqs" on one stream; returns the acks received and the final status.
  grpc::Status StreamAll(const std::vector<v1::IngestRequest>& reqs,
                         std::vector<v1::IngestAck>* acks, const std::string& token = "") {
    auto ctx = Context(token);
    auto stream = stub_->Stream(ctx.get());
    v1::IngestAck ack;
    for (const auto& r : reqs) {
      if (!stream->Write(r)) break;
      if (!stream->Read(&ack)) break;  // one ack per summary, in order
      acks->push_back(ack);
    }
    stream->WritesDone();
    while (stream->Read(&ack)) acks->push_back(ack);
    return stream->Finish();
  }
  int64_t StoredTotal(const std::string& service = "demo") {
    ProfileQuery q;
    q.service = service;
    Profile p;
    Status s = store_->Query(q, &p);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return p.TotalCount();
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  Metrics metrics_;
  std::unique_ptr<IngestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
};

// ------------------------------------------------------------ rejections

struct RejectCase {
  std::string name;
  std::function<void(v1::IngestRequest*)> mutate;
  grpc::StatusCode code;
  std::string field;  // must appear in the message
};

class IngestRejectTest : public IngestTest, public ::testing::WithParamInterface<RejectCase> {};

// A valid summary goes first on the stream and is stored; the bad one ends
// the stream with the rule's code, a message naming the sequence and the
// field, and nothing of it is stored.
TEST_P(IngestRejectTest, RejectsWithCodeAndFieldAndStoresNothing) {
  StartServer();
  v1::IngestRequest good = Request(1, Valid());
  v1::IngestRequest bad = Request(2, MakeSummary("inst-1", "demo", kT0 + 10000000000LL,
                                                 {{"main;bad", 1000}}));
  GetParam().mutate(&bad);
  std::vector<v1::IngestAck> acks;
  grpc::Status st = StreamAll({good, bad}, &acks);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].sequence(), 1u);
  EXPECT_EQ(st.error_code(), GetParam().code) << st.error_message();
  EXPECT_NE(st.error_message().find("sequence 2"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find(GetParam().field), std::string::npos) << st.error_message();
  // Only the good summary is stored (the bad one may even be another service).
  ProfileQuery q;
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 10);
  // Unary Push gives the same answer.
  v1::IngestAck ack;
  grpc::Status pst = Push(bad, &ack);
  EXPECT_EQ(pst.error_code(), GetParam().code);
  EXPECT_EQ(pst.error_message(), st.error_message());
}

using grpc::StatusCode;
#define S(x) (r->mutable_summary()->x)
const RejectCase kRejectCases[] = {
    {"R1_SchemaVersionZero", [](auto* r) { S(set_schema_version(0)); },
     StatusCode::INVALID_ARGUMENT, "schema_version"},
    {"R1_SchemaVersionFromTheFuture", [](auto* r) { S(set_schema_version(2)); },
     StatusCode::INVALID_ARGUMENT, "schema_version"},
    {"R2_EmptyService", [](auto* r) { S(mutable_process()->set_service("")); },
     StatusCode::INVALID_ARGUMENT, "process.service"},
    {"R2_EmptyAgentInstanceId",
     [](auto* r) {
       S(mutable_process()->set_agent_instance_id(""));
       r->set_agent_instance_id("");
     },
     StatusCode::INVALID_ARGUMENT, "process.agent_instance_id"},
    {"R3_ZeroStartTime", [](auto* r) { S(set_start_time_unix_nanos(0)); },
     StatusCode::INVALID_ARGUMENT, "start_time_unix_nanos"},
    {"R3_EndBeforeStart", [](auto* r) { S(set_end_time_unix_nanos(kT0 - 1)); },
     StatusCode::INVALID_ARGUMENT, "end_time_unix_nanos"},
    {"R4_UnspecifiedMode", [](auto* r) { S(set_mode(v1::SAMPLING_MODE_UNSPECIFIED)); },
     StatusCode::INVALID_ARGUMENT, "mode"},
    {"R4_ZeroPeriod", [](auto* r) { S(set_period_nanos(0)); }, StatusCode::INVALID_ARGUMENT,
     "period_nanos"},
    {"R5_EmptyStringTable", [](auto* r) { S(clear_string_table()); },
     StatusCode::INVALID_ARGUMENT, "string_table"},
    {"R5_FirstStringNotEmpty", [](auto* r) { S(set_string_table(0, "x")); },
     StatusCode::INVALID_ARGUMENT, "string_table[0]"},
    {"R5_TooManyStrings",
     [](auto* r) {
       for (int i = 0; i < 1001; ++i) S(add_string_table("s"));
     },
     StatusCode::RESOURCE_EXHAUSTED, "string_table"},
    {"R5_StringTooLong", [](auto* r) { S(add_string_table(std::string(1025, 'x'))); },
     StatusCode::RESOURCE_EXHAUSTED, "string_table["},
    {"R6_StrindexOutOfRange", [](auto* r) { S(mutable_mappings(0)->set_path_strindex(9999)); },
     StatusCode::INVALID_ARGUMENT, "mappings[0].path_strindex"},
    {"R6_FunctionNameOutOfRange",
     [](auto* r) { S(mutable_functions(0)->set_name_strindex(9999)); },
     StatusCode::INVALID_ARGUMENT, "functions[0].name_strindex"},
    {"R7_MappingIndexOutOfRange",
     [](auto* r) { S(mutable_locations(0)->set_mapping_index(5)); },
     StatusCode::INVALID_ARGUMENT, "locations[0].mapping_index"},
    {"R7_LocationWithoutLines", [](auto* r) { S(mutable_locations(0)->clear_lines()); },
     StatusCode::INVALID_ARGUMENT, "locations[0].lines"},
    {"R7_FunctionIndexOutOfRange",
     [](auto* r) { S(mutable_locations(0)->mutable_lines(0)->set_function_index(77)); },
     StatusCode::INVALID_ARGUMENT, "function_index"},
    {"R8_TooManyLocations",
     [](auto* r) {
       for (int i = 0; i < 500; ++i) *S(add_locations()) = r->summary().locations(0);
     },
     StatusCode::RESOURCE_EXHAUSTED, "locations"},
    {"R8_TooManyStacks",
     [](auto* r) {
       for (int i = 0; i < 100; ++i) *S(add_stacks()) = r->summary().stacks(0);
     },
     StatusCode::RESOURCE_EXHAUSTED, "stacks"},
    {"R8_StackTooDeep",
     [](auto* r) {
       for (int i = 0; i < 64; ++i) S(mutable_stacks(0)->add_location_indexes(0));
     },
     StatusCode::RESOURCE_EXHAUSTED, "stacks[0].location_indexes"},
    {"R9_EmptyStack", [](auto* r) { S(mutable_stacks(0)->clear_location_indexes()); },
     StatusCode::INVALID_ARGUMENT, "stacks[0].location_indexes"},
    {"R9_LocationIndexOutOfRange",
     [](auto* r) { S(mutable_stacks(0)->set_location_indexes(0, 99)); },
     StatusCode::INVALID_ARGUMENT, "stacks[0].location_indexes[0]"},
    {"R10_StackIndexOutOfRange", [](auto* r) { S(mutable_samples(0)->set_stack_index(9)); },
     StatusCode::INVALID_ARGUMENT, "samples[0].stack_index"},
    {"R10_ZeroCount", [](auto* r) { S(mutable_samples(0)->set_count(0)); },
     StatusCode::INVALID_ARGUMENT, "samples[0].count"},
    {"R10_ThreadIndexOutOfRange", [](auto* r) { S(mutable_samples(0)->set_thread_index(1)); },
     StatusCode::INVALID_ARGUMENT, "samples[0].thread_index"},
    {"R11_TooManyLabels",
     [](auto* r) {
       for (int i = 0; i < 9; ++i) {
         auto* l = S(add_labels());
         l->set_key("k" + std::to_string(i));
         l->set_value("v");
       }
     },
     StatusCode::RESOURCE_EXHAUSTED, "labels"},
    {"R11_BadLabelKey",
     [](auto* r) {
       auto* l = S(add_labels());
       l->set_key("9bad-key");
       l->set_value("v");
     },
     StatusCode::INVALID_ARGUMENT, "labels[0].key"},
    {"R11_EmptyLabelKey", [](auto* r) { S(add_labels())->set_value("v"); },
     StatusCode::INVALID_ARGUMENT, "labels[0].key"},
    {"R11_DuplicateLabelKey",
     [](auto* r) {
       for (int i = 0; i < 2; ++i) {
         auto* l = S(add_labels());
         l->set_key("env");
         l->set_value("v");
       }
     },
     StatusCode::INVALID_ARGUMENT, "labels[1].key"},
    {"R11_ReservedServiceLabel",
     [](auto* r) {
       auto* l = S(add_labels());
       l->set_key("service");
       l->set_value("other");
     },
     StatusCode::INVALID_ARGUMENT, "labels[0].key"},
    {"R11_LabelKeyTooLong",
     [](auto* r) {
       auto* l = S(add_labels());
       l->set_key(std::string(33, 'k'));
       l->set_value("v");
     },
     StatusCode::RESOURCE_EXHAUSTED, "labels[0].key"},
    {"R11_LabelValueTooLong",
     [](auto* r) {
       auto* l = S(add_labels());
       l->set_key("env");
       l->set_value(std::string(65, 'v'));
     },
     StatusCode::RESOURCE_EXHAUSTED, "labels[0].value"},
    {"R12_NegativeCounter",
     [](auto* r) { S(mutable_counters()->set_unwind_failures(-1)); },
     StatusCode::INVALID_ARGUMENT, "counters"},
    {"InstanceIdMismatch", [](auto* r) { r->set_agent_instance_id("someone-else"); },
     StatusCode::INVALID_ARGUMENT, "agent_instance_id"},
};
#undef S

INSTANTIATE_TEST_SUITE_P(Rules, IngestRejectTest, ::testing::ValuesIn(kRejectCases),
                         [](const auto& info) { return info.param.name; });

// ------------------------------------------------------------ happy paths

TEST_F(IngestTest, StreamAcksEverySequenceAfterStoring) {
  StartServer();
  std::vector<v1::IngestRequest> reqs;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    reqs.push_back(Request(seq, MakeSummary("inst-1", "demo", kT0 + seq * 10000000000LL,
                                            {{"main;work;hot", int64_t(seq)}, {"main", 1}})));
  }
  std::vector<v1::IngestAck> acks;
  grpc::Status st = StreamAll(reqs, &acks);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(acks.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(acks[i].sequence(), i + 1);
    EXPECT_FALSE(acks[i].duplicate());
  }
  EXPECT_EQ(StoredTotal(), 15 + 5);
  // Labels from the process identity are queryable.
  ProfileQuery q;
  q.service = "demo";
  q.matchers = {{"host", LabelMatcher::kEq, "testhost"}, {"pid", LabelMatcher::kEq, "4242"}};
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 20);
}

TEST_F(IngestTest, ResendIsAcknowledgedAsDuplicateAndStoredOnce) {
  StartServer();
  v1::IngestRequest r = Request(1, Valid());
  std::vector<v1::IngestAck> acks;
  ASSERT_TRUE(StreamAll({r, Request(2, Valid())}, &acks).ok());
  ASSERT_EQ(acks.size(), 2u);
  // The agent reconnects and resends what it thinks was not acknowledged.
  acks.clear();
  ASSERT_TRUE(StreamAll({r, Request(2, Valid()), Request(3, Valid())}, &acks).ok());
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_TRUE(acks[0].duplicate());
  EXPECT_EQ(acks[0].sequence(), 1u);
  EXPECT_TRUE(acks[1].duplicate());
  EXPECT_FALSE(acks[2].duplicate());
  v1::IngestAck ack;
  ASSERT_TRUE(Push(r, &ack).ok());
  EXPECT_TRUE(ack.duplicate());
  EXPECT_EQ(ack.sequence(), 1u);
  EXPECT_EQ(StoredTotal(), 30);
}

TEST_F(IngestTest, AuthOnRequiresTheBearerToken) {
  IngestOptions o;
  o.auth_token = "s3cret";
  StartServer(o);
  v1::IngestAck ack;
  grpc::Status st = Push(Request(1, Valid()), &ack);
  EXPECT_EQ(st.error_code(), StatusCode::UNAUTHENTICATED) << st.error_message();
  st = Push(Request(1, Valid()), &ack, "wrong");
  EXPECT_EQ(st.error_code(), StatusCode::UNAUTHENTICATED) << st.error_message();
  std::vector<v1::IngestAck> acks;
  st = StreamAll({Request(1, Valid())}, &acks);
  EXPECT_EQ(st.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(acks.empty());
  st = StreamAll({Request(1, Valid())}, &acks, "s3cre");
  EXPECT_EQ(st.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(StoredTotal(), 0);
  ASSERT_TRUE(Push(Request(1, Valid()), &ack, "s3cret").ok());
  ASSERT_TRUE(StreamAll({Request(2, Valid())}, &acks, "s3cret").ok());
  EXPECT_EQ(StoredTotal(), 20);
}

TEST_F(IngestTest, AuthOffAcceptsAnyCaller) {
  StartServer();
  v1::IngestAck ack;
  ASSERT_TRUE(Push(Request(1, Valid()), &ack).ok());
  ASSERT_TRUE(Push(Request(2, Valid()), &ack, "whatever").ok());
  EXPECT_EQ(StoredTotal(), 20);
}

TEST_F(IngestTest, OversizedMessageIsResourceExhausted) {
  IngestOptions o;
  o.max_message_bytes = 64 * 1024;
  StartServer(o);
  v1::StackSummary s = Valid();
  for (int i = 0; i < 100; ++i) s.add_string_table(std::string(1000, 'a' + i % 26));
  v1::IngestAck ack;
  grpc::Status st = Push(Request(1, s), &ack);
  EXPECT_EQ(st.error_code(), StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  std::vector<v1::IngestAck> acks;
  st = StreamAll({Request(1, s)}, &acks);
  EXPECT_EQ(st.error_code(), StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(StoredTotal(), 0);
  // The same server still takes normal summaries.
  ASSERT_TRUE(Push(Request(1, Valid()), &ack).ok());
}

TEST_F(IngestTest, GzipCompressedRequestsAreAccepted) {
  StartServer();
  v1::StackSummary s = Valid();
  for (int i = 0; i < 50; ++i) s.add_string_table(std::string(500, 'z'));  // compressible
  auto ctx = Context();
  ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
  auto stream = stub_->Stream(ctx.get());
  ASSERT_TRUE(stream->Write(Request(1, s)));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.sequence(), 1u);
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(StoredTotal(), 10);
}

// A store that cannot write: the agent must be told to retry, not to drop.
class BrokenStore : public Store {
 public:
  Status Write(const SummaryRecord&, bool*) override { return Status::IOError("disk full"); }
  Status ListServices(std::vector<ServiceInfo>*) override { return Status::OK(); }
  Status LabelNames(const ProfileQuery&, std::vector<std::string>*) override { return {}; }
  Status LabelValues(const ProfileQuery&, const std::string&, std::vector<std::string>*) override {
    return {};
  }
  Status Query(const ProfileQuery&, Profile*) override { return Status::OK(); }
  Status Series(const ProfileQuery&, int64_t, const std::string&,
                std::vector<SeriesPoint>*) override {
    return Status::OK();
  }
  Status DeleteBefore(int64_t) override { return Status::OK(); }
  int64_t SizeBytes() override { return 0; }
};

TEST_F(IngestTest, StorageFailureIsUnavailableAndNotAcked) {
  BrokenStore broken;
  StartServer({}, &broken);
  std::vector<v1::IngestAck> acks;
  grpc::Status st = StreamAll({Request(1, Valid())}, &acks);
  EXPECT_TRUE(acks.empty());
  EXPECT_EQ(st.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("sequence 1"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("disk full"), std::string::npos) << st.error_message();
}

TEST_F(IngestTest, MetricsCountIngestDuplicatesAndRejections) {
  StartServer();
  v1::IngestAck ack;
  ASSERT_TRUE(Push(Request(1, Valid()), &ack).ok());
  ASSERT_TRUE(Push(Request(1, Valid()), &ack).ok());
  v1::IngestRequest bad = Request(2, Valid());
  bad.mutable_summary()->set_period_nanos(0);
  EXPECT_FALSE(Push(bad, &ack).ok());
  std::string text = metrics_.RenderPrometheus(0);
  EXPECT_NE(text.find("invalid"), std::string::npos) << text;
}

// stackstream_bytes_received_total: the serialized (uncompressed) size of
// each summary stored, whether it came on a stream (the size gRPC received,
// here gzip-compressed on the wire) or by Push; duplicates are not counted.
TEST_F(IngestTest, BytesReceivedIsTheSerializedSizeOfEachStoredSummary) {
  StartServer();
  std::vector<v1::IngestRequest> reqs = {Request(1, Valid()), Request(2, Valid()),
                                         Request(1, Valid())};
  v1::Label* label = reqs[1].mutable_summary()->add_labels();
  label->set_key("note");
  label->set_value(std::string(60, 'x'));  // compresses well: wire size != size
  auto ctx = Context();
  ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
  auto stream = stub_->Stream(ctx.get());
  v1::IngestAck ack;
  for (const auto& r : reqs) {
    ASSERT_TRUE(stream->Write(r));
    ASSERT_TRUE(stream->Read(&ack));
  }
  EXPECT_TRUE(ack.duplicate());
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  v1::IngestRequest pushed = Request(3, Valid());
  ASSERT_TRUE(Push(pushed, &ack).ok());
  const size_t want = reqs[0].ByteSizeLong() + reqs[1].ByteSizeLong() + pushed.ByteSizeLong();
  std::string text = metrics_.RenderPrometheus(0);
  EXPECT_NE(text.find("\nstackstream_bytes_received_total " + std::to_string(want) + "\n"),
            std::string::npos)
      << "want " << want << " in\n" << text;
}

TEST_F(IngestTest, TlsWhenCertificateAndKeyAreGiven) {
  if (system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
  std::string key = dir_ + "/key.pem", cert = dir_ + "/cert.pem";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 "
                    "-addext subjectAltName=DNS:localhost -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  ASSERT_EQ(system(cmd.c_str()), 0);
  IngestOptions o;
  o.tls_cert = cert;
  o.tls_key = key;
  StartServer(o);
  std::ifstream in(cert);
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem;
  auto channel = grpc::CreateChannel("localhost:" + std::to_string(server_->port()),
                                     grpc::SslCredentials(ssl));
  auto stub = v1::IngestService::NewStub(channel);
  v1::IngestAck ack;
  auto ctx = Context();
  grpc::Status st = stub->Push(ctx.get(), Request(1, Valid()), &ack);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(StoredTotal(), 10);
  // Plaintext to a TLS port fails.
  auto plain = v1::IngestService::NewStub(grpc::CreateChannel(
      "localhost:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  auto ctx2 = Context();
  ctx2->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  EXPECT_FALSE(plain->Push(ctx2.get(), Request(2, Valid()), &ack).ok());
  // A missing key file is a clear error.
  IngestOptions bad;
  bad.listen = "127.0.0.1:0";
  bad.tls_cert = cert;
  bad.tls_key = dir_ + "/missing.pem";
  IngestServer s2(store_.get(), nullptr, bad);
  Status ss = s2.Start();
  EXPECT_EQ(ss.code(), Status::kInvalidArgument);
  EXPECT_NE(ss.message().find("missing.pem"), std::string::npos) << ss.ToString();
}

}  // namespace
}  // namespace testing
}  // namespace collector
}  // namespace stackstream
