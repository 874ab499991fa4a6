#include "common/logging.h"

#include <sstream>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "gmock/gmock.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"

namespace vigil {
namespace {

using ::testing::HasSubstr;

std::vector<nlohmann::json> ParseLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not one JSON object: " << line;
    if (nlohmann::json::accept(line)) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

TEST(LoggingTest, AMessageWithQuotesNewlinesAndBadBytesIsOneJsonObject) {
  const std::string msg = "event=flush_failed status=\"INTERNAL: a \"quoted\" path\\x\nsecond line\t\x01 \xff\xfe\"";
  const std::string line = JsonLogLine("2026-12-06T12:00:00.000Z", "error", "vigild", msg);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  ASSERT_TRUE(nlohmann::json::accept(line)) << line;
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-12-06T12:00:00.000Z");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["logger"], "vigild");
  // Everything but the invalid bytes comes back as written; those are replaced, not dropped.
  EXPECT_EQ(j["msg"], "event=flush_failed status=\"INTERNAL: a \"quoted\" path\\x\nsecond line\t\x01 \xEF\xBF\xBD\xEF\xBF\xBD\"");
}

class LoggingSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    ASSERT_TRUE(InitJsonLogging("info", sink_).ok());
  }
  void TearDown() override { (void)InitJsonLogging("info"); }
  std::vector<nlohmann::json> Lines() {
    spdlog::default_logger()->flush();
    return ParseLines(out_.str());
  }
  std::ostringstream out_;
  spdlog::sink_ptr sink_;
};

TEST_F(LoggingSinkTest, VigildsLinesAreJsonAtTheLevelAsked) {
  spdlog::info("event=started status=\"{}\"", "a \"quoted\"\nstatus");
  spdlog::debug("event=not_shown");
  const std::vector<nlohmann::json> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["logger"], "vigild");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["msg"], "event=started status=\"a \"quoted\"\nstatus\"");
}

TEST_F(LoggingSinkTest, GrpcsLinesComeThroughTheSameSink) {
  gpr_log(GPR_ERROR, "a gRPC error with \"quotes\"");
  const std::vector<nlohmann::json> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["logger"], "grpc");
  EXPECT_EQ(lines[0]["level"], "error");
  EXPECT_THAT(lines[0]["msg"].get<std::string>(), HasSubstr("a gRPC error with \"quotes\""));
}

TEST_F(LoggingSinkTest, LibrdkafkasLinesComeThroughTheSameSink) {
  // A consumer's property on a producer: librdkafka warns (CONFWARN) as the client is made.
  auto conf = MakeKafkaConf({{"group.id", "ignored-by-a-producer"}, {"bootstrap.servers", "127.0.0.1:1"}});
  ASSERT_TRUE(conf.ok());
  std::string err;
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf->get(), err));
  ASSERT_NE(producer, nullptr) << err;
  producer.reset();
  bool warned = false;
  for (const nlohmann::json& line : Lines()) {
    EXPECT_EQ(line["logger"], "librdkafka") << line;
    warned = warned || (line["level"] == "warning" && line["msg"].get<std::string>().find("CONFWARN") == 0);
  }
  EXPECT_TRUE(warned) << out_.str();
}

TEST(LoggingLevelTest, AnUnknownLevelIsRefused) {
  EXPECT_EQ(InitJsonLogging("loud").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(InitJsonLogging("off").ok());
  EXPECT_TRUE(InitJsonLogging("info").ok());
}

}  // namespace
}  // namespace vigil
