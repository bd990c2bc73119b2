// OpenStore: maps a --storage URI to an engine.
//   sqlite:PATH   (also sqlite://PATH) the embedded SqliteStore; the
//                 directory of PATH is created when missing.
//   clickhouse://HOST:PORT[,...]/DATABASE[?user=&password=&cluster=]
//                 ClickHouseStore (see clickhouse_store.h).
#include <filesystem>
#include <system_error>

#include "storage/clickhouse_store.h"
#include "storage/sqlite_store.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

Status OpenStore(const std::string& uri, std::unique_ptr<Store>* out) {
  const std::string kSqlite = "sqlite:";
  const std::string kClickHouse = "clickhouse://";
  if (uri.compare(0, kClickHouse.size(), kClickHouse) == 0) {
    std::unique_ptr<ClickHouseStore> store;
    Status s = ClickHouseStore::Open(uri, &store);
    if (!s.ok()) return s;
    *out = std::move(store);
    return Status::OK();
  }
  if (uri.compare(0, kSqlite.size(), kSqlite) != 0) {
    return Status::InvalidArgument("unsupported storage URI \"" + uri +
                                   "\": expected sqlite:PATH or clickhouse://HOST:PORT/DATABASE");
  }
  std::string path = uri.substr(kSqlite.size());
  if (path.compare(0, 2, "//") == 0) path = path.substr(2);
  if (path.empty()) return Status::InvalidArgument("storage URI \"" + uri + "\" has no path");
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return Status::IOError("cannot create storage directory " + dir.string() + ": " +
                             ec.message());
    }
  }
  std::unique_ptr<SqliteStore> store;
  Status s = SqliteStore::Open(path, &store);
  if (!s.ok()) return s;
  *out = std::move(store);
  return Status::OK();
}

}  // namespace collector
}  // namespace stackstream
