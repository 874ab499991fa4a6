#include "services/escalation/engine/validate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/builders.h"

namespace vigil {
namespace {

using ::testing::StartsWith;
using testing::Ev;

std::string Why(const v1::Event& e) {
  absl::Status s = ValidateEvent(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << e.ShortDebugString();
  return std::string(s.message());
}

TEST(ValidateTest, AGoodEventPasses) { EXPECT_TRUE(ValidateEvent(Ev("c1").Call()).ok()); }

TEST(ValidateTest, EnvelopeFieldsAreRequired) {
  v1::Event e = Ev("c1").Call();
  e.clear_event_id();
  EXPECT_THAT(Why(e), StartsWith("event_id: required"));
  e = Ev("c1").Call();
  e.clear_victim_id();
  EXPECT_THAT(Why(e), StartsWith("victim_id: required"));
  e = Ev("c1").Call();
  e.clear_occurred_at();
  EXPECT_THAT(Why(e), StartsWith("occurred_at: required"));
  e = Ev("c1");
  EXPECT_THAT(Why(e), StartsWith("payload: no payload"));
  e = Ev("c1").Call();
  e.clear_incident_id();
  EXPECT_THAT(Why(e), StartsWith("incident_id: required"));
}

TEST(ValidateTest, ACallReturnedNamesItsIncident) {
  EXPECT_TRUE(ValidateEvent(Ev("r1").CallReturned()).ok());
  v1::Event e = Ev("r1").CallReturned();
  e.clear_incident_id();
  EXPECT_THAT(Why(e), StartsWith("incident_id: required"));
}

TEST(ValidateTest, IdsAreBoundedAndPrintable) {
  v1::Event e = Ev(std::string(200, 'x')).Call();
  EXPECT_THAT(Why(e), StartsWith("event_id: longer than 128"));
  e = Ev("c\n1").Call();
  EXPECT_THAT(Why(e), StartsWith("event_id: has control characters"));
}

TEST(ValidateTest, EveryControlByteIsFoundWhereverItIsAndNoOtherByteIs) {
  // Ids are checked eight bytes at a time and then byte by byte: every length up to three words and a tail,
  // every position, every byte value.
  for (size_t length = 1; length <= 27; ++length) {
    for (size_t at = 0; at < length; ++at) {
      for (int b = 1; b < 256; ++b) {
        std::string id(length, 'x');
        id[at] = static_cast<char>(b);
        const bool control = b < 0x20 || b == 0x7f;
        const absl::Status s = ValidateEvent(Ev(id).Call());
        if (control) {
          ASSERT_EQ(s.message(), "event_id: has control characters") << "byte " << b << " at " << at;
        } else {
          ASSERT_TRUE(s.ok()) << "byte " << b << " at " << at << " of " << length << ": " << s;
        }
      }
    }
  }
}

TEST(ValidateTest, TimesOutsideTheSaneRangeAreRejected) {
  v1::Event e = Ev("c1").Call();
  e.mutable_occurred_at()->set_seconds(-5);
  EXPECT_THAT(Why(e), StartsWith("occurred_at: outside"));
  e.mutable_occurred_at()->set_seconds(4102444800);
  EXPECT_THAT(Why(e), StartsWith("occurred_at: outside"));
}

TEST(ValidateTest, EnumsMustBeSetAndKnown) {
  v1::Event e = Ev("g1").Graded(v1::IncidentGraded::GRADE_UNSPECIFIED);
  EXPECT_THAT(Why(e), StartsWith("incident_graded.grade: required"));
  e = Ev("g1").Graded(static_cast<v1::IncidentGraded::Grade>(42));
  EXPECT_THAT(Why(e), StartsWith("incident_graded.grade: unknown value 42"));
  e = Ev("a1").ArrestRequested("R1", v1::ArrestRequested::URGENCY_UNSPECIFIED);
  EXPECT_THAT(Why(e), StartsWith("arrest_requested.urgency: required"));
  e = Ev("m1").Marker("S1", v1::MarkerMatched::MARKER_UNSPECIFIED);
  EXPECT_THAT(Why(e), StartsWith("marker_matched.marker: required"));
}

TEST(ValidateTest, PayloadRequirements) {
  EXPECT_THAT(Why(Ev("a1").ArrestRequested("")), StartsWith("arrest_requested.request_id: required"));
  EXPECT_THAT(Why(Ev("d1").ArrestDeferred("R1", "SGT1")), StartsWith("arrest_deferred.defer_until: required"));
  EXPECT_THAT(Why(Ev("k1").Ack("")), StartsWith("escalation_acknowledged.alert_id: required"));
  EXPECT_THAT(Why(Ev("k1").Ack("al-1", "")), StartsWith("escalation_acknowledged.acknowledged_by: required"));
  EXPECT_THAT(Why(Ev("q1").DisclosureRequested("")), StartsWith("disclosure_requested.application_id: required"));
  EXPECT_THAT(Why(Ev("r1").Assessed(v1::RiskAssessed::HIGH, 25)), StartsWith("risk_assessed.yes_count"));
  EXPECT_TRUE(ValidateEvent(Ev("d1").ArrestDeferred("R1")).ok());
  v1::Event marac = Ev("m1").MaracReferred();
  marac.clear_incident_id();
  EXPECT_TRUE(ValidateEvent(marac).ok());
}

}  // namespace
}  // namespace vigil
