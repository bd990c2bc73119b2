// SqliteConnection: one sqlite3 handle plus a cache of its prepared
// statements. SqliteStatement: a scoped use of one cached statement.
//
// Thread-safety: a connection (and every statement taken from it) is used by
// one thread at a time; callers own it exclusively (SqliteStore hands out
// connections from a pool or under its writer mutex).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "format/status.h"

namespace stackstream {
namespace collector {

// A prepared statement borrowed from a SqliteConnection's cache. It is reset
// (and its bindings cleared) when this object goes out of scope, so it can be
// reused by the next caller. Parameter indexes are 1-based, columns 0-based.
class SqliteStatement {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  SqliteStatement& Bind(int index, int64_t value);
  SqliteStatement& BindText(int index, const std::string& value);
  SqliteStatement& BindBlob(int index, const std::string& value);

  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step();
  // Steps to completion; returns OK when the statement ran to SQLITE_DONE.
  Status Run();

  int64_t ColumnInt(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;

 private:
  sqlite3_stmt* stmt_;
};

class SqliteConnection {
 public:
  // Opens (creating if needed) the database file at "path" and applies the
  // connection pragmas (WAL, synchronous=FULL, busy timeout).
  static Status Open(const std::string& path, std::unique_ptr<SqliteConnection>* out);
  ~SqliteConnection();
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  // Runs one or more statements that return no rows we care about.
  Status Exec(const std::string& sql);

  // Returns the cached prepared statement for "sql" (preparing it once).
  // On failure "*status" is set and the returned statement must not be used.
  sqlite3_stmt* Prepare(const char* sql, Status* status);

  // Status for the last error on this connection, prefixed by "what".
  Status Error(const std::string& what) const;

  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  sqlite3* db() const { return db_; }

 private:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;  // keyed by literal address
};

}  // namespace collector
}  // namespace stackstream
