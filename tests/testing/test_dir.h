// A directory of the running test's own, TEMP/vigil-KIND-PID-TEST: empty when
// made, removed with everything in it when done.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace vigil::testing {

class TestDir {
 public:
  explicit TestDir(const std::string& kind)
      : path_(std::filesystem::temp_directory_path() /
              ("vigil-" + kind + "-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path_);
  }
  ~TestDir() { std::filesystem::remove_all(path_); }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  std::filesystem::path operator/(const std::filesystem::path& p) const { return path_ / p; }
  std::string string() const { return path_.string(); }

 private:
  const std::filesystem::path path_;
};

}  // namespace vigil::testing
