// The store writes a batch atomically and as written: reordering it by key (for the memtable's sake) keeps
// each key's operations in their order, and a batch with a range delete is written as it is.
#include "common/store.h"

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace vigil {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("store-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    auto store = Store::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Value(const std::string& key) {
    auto v = store_->Get(key);
    EXPECT_TRUE(v.ok());
    return v.ok() && v->has_value() ? **v : "(absent)";
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, AnUnsortedBatchKeepsEachKeysOperationsInOrder) {
  rocksdb::WriteBatch batch;
  batch.Put("k/3", "three");
  batch.Put("k/1", "first");
  batch.Delete("k/1");
  batch.Put("k/2", "two");
  batch.Put("k/1", "again");
  batch.Put("k/4", "four");
  batch.Delete("k/4");
  ASSERT_TRUE(store_->Write(&batch, Store::Durability::kProcess).ok());
  EXPECT_EQ(Value("k/1"), "again");
  EXPECT_EQ(Value("k/2"), "two");
  EXPECT_EQ(Value("k/3"), "three");
  EXPECT_EQ(Value("k/4"), "(absent)");
}

TEST_F(StoreTest, ABatchWithARangeDeleteIsWrittenAsItIs) {
  rocksdb::WriteBatch first;
  first.Put("r/1", "old");
  ASSERT_TRUE(store_->Write(&first, Store::Durability::kProcess).ok());
  rocksdb::WriteBatch batch;
  batch.Put("r/2", "before the range delete");
  batch.DeleteRange("r/", "r/~");
  batch.Put("r/3", "after it");
  ASSERT_TRUE(store_->Write(&batch, Store::Durability::kProcess).ok());
  EXPECT_EQ(Value("r/1"), "(absent)");
  EXPECT_EQ(Value("r/2"), "(absent)");
  EXPECT_EQ(Value("r/3"), "after it");
}

}  // namespace
}  // namespace vigil
