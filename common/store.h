// The RocksDB seam: Vigil's state is a view of the Kafka log, kept here.
// Library errors become statuses once, at this edge: Corruption is DATA_LOSS,
// I/O errors (a full disk, a read-only directory) are UNAVAILABLE.
// Thread-safe as RocksDB is: concurrent reads and writes are allowed.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace vigil {

class Store {
 public:
  // Opens (creating if absent) the database in `path`, checking for corruption.
  // DATA_LOSS names the way to rebuild from the log.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);

  // The value, nullopt when absent.
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key) const;

  // kSync: the write survives a machine crash (the WAL is synced). kProcess: it
  // survives the process dying (SIGKILL included), not a power cut; for state
  // that is rebuilt from the Kafka log anyway, that is enough.
  enum class Durability { kSync, kProcess };

  // Applies the batch atomically: all of it or none.
  absl::Status Write(rocksdb::WriteBatch* batch, Durability durability);

  // Calls fn(key, value) for each key starting with prefix, in key order, until
  // it returns false; from the first such key at or after `from` when given.
  absl::Status Scan(absl::string_view prefix, const std::function<bool(absl::string_view, absl::string_view)>& fn,
                    absl::string_view from = {}) const;

  // Deletes every key starting with prefix.
  absl::Status DeletePrefix(absl::string_view prefix);

 private:
  explicit Store(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
};

// Translates a RocksDB status to an absl status, with `what` as context.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

}  // namespace vigil
