#include "common/jsonl.h"

#include "gtest/gtest.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {
namespace {

TEST(ParseProtobufOrJsonTest, ReadsEitherEncodingOfTheSameMessage) {
  v1::Alert alert;
  alert.set_alert_id("al-1");
  alert.set_rule("repeat-calls");
  alert.set_level(v1::INSPECTOR);
  alert.add_evidence_event_ids("c1");
  for (const std::string& bytes : {alert.SerializeAsString(), ToJsonLine(alert)}) {
    v1::Alert read;
    read.set_victim_id("left over from before");
    ASSERT_TRUE(ParseProtobufOrJson(bytes, &read).ok()) << bytes;
    EXPECT_EQ(read.SerializeAsString(), alert.SerializeAsString()) << bytes;
  }
}

TEST(ParseProtobufOrJsonTest, AFieldANewerWriterAddedIsSkippedInJson) {
  v1::Alert read;
  ASSERT_TRUE(ParseProtobufOrJson(R"({"alert_id":"al-1","added_later":3})", &read).ok());
  EXPECT_EQ(read.alert_id(), "al-1");
}

TEST(ParseProtobufOrJsonTest, NeitherEncodingIsRefused) {
  v1::Alert read;
  EXPECT_EQ(ParseProtobufOrJson("{not json", &read).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProtobufOrJson("\xff\xff\xff", &read).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
