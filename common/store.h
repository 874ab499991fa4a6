// The RocksDB seam: Vigil's state is a view of the Kafka log, kept here.
// Library errors become statuses once, at this edge: Corruption is DATA_LOSS,
// I/O errors (a full disk, a read-only directory) are UNAVAILABLE.
// Thread-safe as RocksDB is: concurrent reads and writes are allowed.
#pragma once

#include <atomic>
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
  // RocksDB's block cache: the stored blocks read most recently are kept decoded in this much memory
  // (it fills only as blocks are read); a read that misses costs a file read and a copy.
  static constexpr size_t kDefaultBlockCacheBytes = size_t{128} << 20;

  // Opens (creating if absent) the database in `path`, checking for corruption.
  // DATA_LOSS names the way to rebuild from the log.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                                     size_t block_cache_bytes = kDefaultBlockCacheBytes);

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

  // UNAVAILABLE, saying which, when the directory's filesystem is read-only or
  // has less than min_free_bytes free. Checked before writes, so that a filling
  // disk stops vigild before RocksDB itself runs out of room: RocksDB 7.8 cannot
  // go on after its log fails to write (it aborts), and a restart is then the way back.
  absl::Status CheckWritable() const;
  void set_min_free_bytes(uint64_t bytes) { min_free_bytes_ = bytes; }  // any thread

  // After a write error: clears RocksDB's background error and proves that a
  // synced write succeeds again. OK once the store takes writes; UNAVAILABLE
  // while the fault lasts.
  absl::Status Recover();

 private:
  Store(std::unique_ptr<rocksdb::DB> db, std::string path) : db_(std::move(db)), path_(std::move(path)) {}
  std::unique_ptr<rocksdb::DB> db_;
  const std::string path_;
  std::atomic<uint64_t> min_free_bytes_{0};
};

// Translates a RocksDB status to an absl status, with `what` as context.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

}  // namespace vigil
