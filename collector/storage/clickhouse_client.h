// ClickHouseClient: one ClickHouse server spoken to over its HTTP interface
// (cpp-httplib, keep-alive connections from a small pool). Statements and
// results use the RowBinary format both ways, so nothing is parsed as text
// and any byte string round-trips. Works with 18.16 (Debian 12) and newer.
//
// Errors: a connection that fails, or a server that answers with an error,
// is Status::Unavailable (the caller may retry later; nothing is partially
// acknowledged because ClickHouse inserts one block atomically).
//
// Thread-safe: each call leases its own connection.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "format/status.h"

namespace httplib {
class Client;
}

namespace stackstream {
namespace collector {

// Appends values in ClickHouse's RowBinary encoding.
class RowBinaryWriter {
 public:
  void UInt8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void UInt64(uint64_t v);
  void Int64(int64_t v) { UInt64(static_cast<uint64_t>(v)); }
  void String(const std::string& v);
  void ArraySize(size_t n) { Varint(n); }
  const std::string& data() const { return out_; }
  size_t size() const { return out_.size(); }

 private:
  void Varint(uint64_t v);
  std::string out_;
};

// Reads values in RowBinary; every getter fails (returns false) at the end of
// the input or on a truncated value.
class RowBinaryReader {
 public:
  explicit RowBinaryReader(const std::string& data) : data_(data) {}
  bool AtEnd() const { return pos_ >= data_.size(); }
  bool UInt8(uint8_t* v);
  bool UInt64(uint64_t* v);
  bool Int64(int64_t* v);
  bool String(std::string* v);
  bool ArraySize(uint64_t* n) { return Varint(n); }

 private:
  bool Varint(uint64_t* v);
  const std::string& data_;
  size_t pos_ = 0;
};

// A SQL string literal for "s" (quoted and escaped; any bytes).
std::string SqlString(const std::string& s);

struct ClickHouseEndpoint {
  std::string host;
  int port = 8123;
  std::string database;
  std::string user;
  std::string password;
};

class ClickHouseClient {
 public:
  explicit ClickHouseClient(ClickHouseEndpoint endpoint);
  ~ClickHouseClient();

  const ClickHouseEndpoint& endpoint() const { return endpoint_; }
  std::string Name() const { return endpoint_.host + ":" + std::to_string(endpoint_.port); }

  // Runs a statement that returns nothing (DDL, ALTER). "use_database":
  // false for statements that must run before the database exists.
  Status Execute(const std::string& sql, bool use_database = true);
  // Runs a SELECT and returns its rows in RowBinary ("FORMAT RowBinary" is
  // appended).
  Status Select(const std::string& sql, std::string* rows, bool use_database = true);
  // INSERT INTO "table" FORMAT RowBinary with "rows" as the body. Returns OK
  // only once the server has confirmed the insert.
  Status Insert(const std::string& table, const std::string& rows);

 private:
  Status Post(const std::string& query_param, const std::string& body, bool use_database,
              std::string* response);
  std::unique_ptr<httplib::Client> Lease();
  void Return(std::unique_ptr<httplib::Client> client);

  const ClickHouseEndpoint endpoint_;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;  // GUARDED_BY(mu_)
};

}  // namespace collector
}  // namespace stackstream
