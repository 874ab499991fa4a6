#include "common/store.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"

namespace vigil {
namespace {
// Written by Recover() to prove the store takes writes; outside every partition's keys.
constexpr char kProbeKey[] = "~probe";

// A batch's puts and deletes, to be written in key order. RocksDB inserts each key into its memtable (a skip
// list) starting from where the previous insert left off, so keys in order cost fewer comparisons and cache
// misses than the same keys scattered. Iterate fails on anything else (a range delete, whose place in the
// batch matters), and the batch is then written as it is.
class KeyOrder : public rocksdb::WriteBatch::Handler {
 public:
  explicit KeyOrder(size_t count) { ops_.reserve(count); }
  struct Op {
    rocksdb::Slice key, value;
    bool deleted;
  };
  rocksdb::Status PutCF(uint32_t family, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    return Add(family, {key, value, false});
  }
  rocksdb::Status DeleteCF(uint32_t family, const rocksdb::Slice& key) override {
    return Add(family, {key, {}, true});
  }
  // The same operations, sorted by key; one key's keep their order.
  rocksdb::WriteBatch Sorted(size_t reserve) {
    std::stable_sort(ops_.begin(), ops_.end(), [](const Op& a, const Op& b) { return a.key.compare(b.key) < 0; });
    rocksdb::WriteBatch out(reserve);
    for (const Op& op : ops_) op.deleted ? out.Delete(op.key) : out.Put(op.key, op.value);
    return out;
  }

 private:
  rocksdb::Status Add(uint32_t family, Op op) {
    if (family != 0) return rocksdb::Status::NotSupported("a column family");
    ops_.push_back(op);
    return rocksdb::Status::OK();
  }
  std::vector<Op> ops_;
};
}  // namespace

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsIOError() || s.IsNoSpace() || s.IsTimedOut() || s.IsBusy()) return absl::UnavailableError(message);
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, size_t block_cache_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("creating ", path, ": ", ec.message()));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.compression = rocksdb::kNoCompression;
  options.IncreaseParallelism(2);
  // 16 MiB memtables (RocksDB's default is 64): the state is small and hot, and after a
  // full disk RocksDB resumes by itself once this much times two is free again.
  options.write_buffer_size = 16 << 20;
  // Reads are point lookups (a victim, an alert, a location) and short scans (a timeline): a Bloom filter
  // per file spares a Get the files that do not hold its key, and the cache keeps hot blocks decoded.
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &db);
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrCat(
        "the state in ", path, " is corrupt (", s.ToString(),
        "). The Kafka log is the source of truth: stop vigild, move the directory aside, and start it with "
        "an empty data directory to rebuild by replaying its partitions from the start."));
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening ", path));
  return std::unique_ptr<Store>(new Store(std::unique_ptr<rocksdb::DB>(db), path));
}

absl::StatusOr<std::optional<std::string>> Store::Get(absl::string_view key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading state");
  return value;
}

absl::Status Store::Write(rocksdb::WriteBatch* batch, Durability durability) {
  rocksdb::WriteOptions options;
  options.sync = durability == Durability::kSync;
  if (KeyOrder order(batch->Count()); batch->Count() > 1 && batch->Iterate(&order).ok()) {
    rocksdb::WriteBatch sorted = order.Sorted(batch->GetDataSize());
    return FromRocks(db_->Write(options, &sorted), "writing state");
  }
  return FromRocks(db_->Write(options, batch), "writing state");
}

absl::Status Store::Scan(absl::string_view prefix,
                         const std::function<bool(absl::string_view, absl::string_view)>& fn,
                         absl::string_view from) const {
  rocksdb::ReadOptions options;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  const rocksdb::Slice start(prefix.data(), prefix.size());
  const absl::string_view seek = from > prefix ? from : prefix;
  for (it->Seek(rocksdb::Slice(seek.data(), seek.size())); it->Valid() && it->key().starts_with(start); it->Next()) {
    if (!fn(absl::string_view(it->key().data(), it->key().size()),
            absl::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "scanning state");
}

absl::Status Store::DeletePrefix(absl::string_view prefix) {
  std::string end(prefix);
  end.push_back('\xff');
  rocksdb::WriteBatch batch;
  batch.DeleteRange(rocksdb::Slice(prefix.data(), prefix.size()), end);
  return Write(&batch, Durability::kSync);
}

absl::Status Store::CheckWritable() const {
  struct statvfs fs;
  if (statvfs(path_.c_str(), &fs) != 0) {
    return absl::UnavailableError(absl::StrCat("checking ", path_, ": ", std::strerror(errno)));
  }
  if (fs.f_flag & ST_RDONLY) return absl::UnavailableError(absl::StrCat(path_, " is on a read-only filesystem"));
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes < min_free_bytes_) {
    return absl::UnavailableError(absl::StrCat("the disk of ", path_, " is nearly full: ", free_bytes >> 20,
                                               " MiB free, below the reserve of ", min_free_bytes_ >> 20, " MiB"));
  }
  return absl::OkStatus();
}

absl::Status Store::Recover() {
  VIGIL_RETURN_IF_ERROR(CheckWritable());
  rocksdb::Status s = db_->Resume();
  if (!s.ok()) return FromRocks(s, "recovering from a write error");
  rocksdb::WriteBatch probe;
  probe.Put(kProbeKey, "");
  return Write(&probe, Durability::kSync);
}

}  // namespace vigil
