#include "storage/clickhouse_client.h"

#include <httplib.h>

#include <cstdio>

namespace stackstream {
namespace collector {

namespace {

constexpr size_t kMaxIdleConnections = 8;
constexpr int kConnectTimeoutSeconds = 2;
constexpr int kReadTimeoutSeconds = 60;

}  // namespace

void RowBinaryWriter::UInt64(uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 8);
}

void RowBinaryWriter::Varint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void RowBinaryWriter::String(const std::string& v) {
  Varint(v.size());
  out_.append(v);
}

bool RowBinaryReader::UInt8(uint8_t* v) {
  if (pos_ + 1 > data_.size()) return false;
  *v = static_cast<uint8_t>(data_[pos_++]);
  return true;
}

bool RowBinaryReader::UInt64(uint64_t* v) {
  if (pos_ + 8 > data_.size()) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
  pos_ += 8;
  *v = r;
  return true;
}

bool RowBinaryReader::Int64(int64_t* v) {
  uint64_t u;
  if (!UInt64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

bool RowBinaryReader::Varint(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool RowBinaryReader::String(std::string* v) {
  uint64_t n;
  if (!Varint(&n) || n > data_.size() - pos_) return false;
  v->assign(data_, pos_, n);
  pos_ += n;
  return true;
}

std::string SqlString(const std::string& s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('\'');
  return out;
}

ClickHouseClient::ClickHouseClient(ClickHouseEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

ClickHouseClient::~ClickHouseClient() = default;

std::unique_ptr<httplib::Client> ClickHouseClient::Lease() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<httplib::Client> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(endpoint_.host, endpoint_.port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);  // a POST is headers then body: no Nagle wait on the second write
  c->set_connection_timeout(kConnectTimeoutSeconds, 0);
  c->set_read_timeout(kReadTimeoutSeconds, 0);
  c->set_write_timeout(kReadTimeoutSeconds, 0);
  return c;
}

void ClickHouseClient::Return(std::unique_ptr<httplib::Client> client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(client));
}

Status ClickHouseClient::Post(const std::string& query_param, const std::string& body,
                              bool use_database, std::string* response) {
  std::string path = "/?";
  httplib::Params params;
  if (use_database) params.emplace("database", endpoint_.database);
  if (!query_param.empty()) params.emplace("query", query_param);
  // Co-sharded tables: IN (SELECT ... FROM distributed) runs on each shard's
  // local table (see clickhouse_store.h). Ignored on one node.
  params.emplace("distributed_product_mode", "local");
  // Long IN lists (series, stack and frame hashes) exceed the 256 KiB default.
  params.emplace("max_query_size", "67108864");
  path += httplib::detail::params_to_query_str(params);
  httplib::Headers headers;
  // Credentials go in headers (never in a URL a proxy may log).
  if (!endpoint_.user.empty()) headers.emplace("X-ClickHouse-User", endpoint_.user);
  if (!endpoint_.password.empty()) headers.emplace("X-ClickHouse-Key", endpoint_.password);
  std::unique_ptr<httplib::Client> client = Lease();
  auto res = client->Post(path.c_str(), headers, body, "application/octet-stream");
  if (!res) {
    return Status::Unavailable("clickhouse " + Name() + ": " + httplib::to_string(res.error()));
  }
  if (res->status != 200) {
    std::string msg = res->body;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (msg.size() > 2000) msg.resize(2000);
    Return(std::move(client));
    return Status::Unavailable("clickhouse " + Name() + " (HTTP " + std::to_string(res->status) +
                               "): " + msg);
  }
  Return(std::move(client));
  if (response) *response = std::move(res->body);
  return Status::OK();
}

Status ClickHouseClient::Execute(const std::string& sql, bool use_database) {
  return Post("", sql, use_database, nullptr);
}

Status ClickHouseClient::Select(const std::string& sql, std::string* rows, bool use_database) {
  return Post("", sql + " FORMAT RowBinary", use_database, rows);
}

Status ClickHouseClient::Insert(const std::string& table, const std::string& rows) {
  return Post("INSERT INTO " + table + " FORMAT RowBinary", rows, true, nullptr);
}

}  // namespace collector
}  // namespace stackstream
