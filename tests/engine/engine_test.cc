// The default rules of DOMAIN.md, one block each: the threshold and one below
// it, the deadline and one second before it, resolution, update instead of
// duplicate, acknowledgement and escalation.
#include "services/escalation/engine/engine.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/escalation/engine/processor.h"
#include "tests/testing/builders.h"

namespace vigil {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::Describe;
using testing::Ev;
using testing::T;
using v1::ArrestRequested;
using v1::IncidentGraded;
using v1::MarkerMatched;
using v1::RiskAssessed;

class RulesTest : public ::testing::Test {
 protected:
  explicit RulesTest(RulesConfig rules = RulesConfig::Defaults()) : engine_(std::move(rules)), processor_(&engine_) {}

  // Transitions of this rule only, from now on: the others run but are not shown.
  void Only(std::string rule) { only_ = std::move(rule); }

  std::vector<std::string> Apply(const v1::Event& e) {
    std::vector<v1::Alert> out;
    absl::Status s = processor_.Apply(e, &out);
    EXPECT_TRUE(s.ok()) << s;
    return Keep(out);
  }
  std::vector<std::string> Advance(Micros t) {
    std::vector<v1::Alert> out;
    EXPECT_TRUE(processor_.AdvanceThrough(t, &out).ok());  // as replay's --until
    return Keep(out);
  }
  std::vector<std::string> Keep(const std::vector<v1::Alert>& out) {
    last_.clear();
    for (const auto& a : out) {
      if (only_.empty() || a.rule() == only_) last_.push_back(a);
    }
    return Describe(last_);
  }
  std::string LastAlertId() const { return last_.empty() ? "" : last_.back().alert_id(); }

  Engine engine_;
  Processor processor_;
  std::vector<v1::Alert> last_;
  std::string only_;
};

// --- repeat-calls: 2 calls in 24 h ---------------------------------------------

TEST_F(RulesTest, RepeatCallsFiresOnTheSecondCallAndNotTheFirst) {
  EXPECT_THAT(Apply(Ev("c1").At("09:00").Call(false)), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").At("13:00").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T13:00:00Z V1/I1 [c1 c2]"));
}

TEST_F(RulesTest, RepeatCallsWindowIncludesExactly24HoursAndNotASecondMore) {
  Apply(Ev("c1").At("09:00").Call(false));
  EXPECT_THAT(Apply(Ev("c2").At("09:00:01", 1).Incident("I2").Call(false)), IsEmpty());
  EXPECT_THAT(Apply(Ev("c3").At("09:00:01", 2).Incident("I3").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-09T09:00:01Z V1/I3 [c2 c3]"));
}

TEST_F(RulesTest, RepeatCallsOnTheSameIncidentUpdatesTheOpenAlert) {
  Only("repeat-calls");
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  const std::string id = LastAlertId();
  EXPECT_THAT(Apply(Ev("c3").At("10:05").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T10:05:00Z V1/I1 [c1 c2 c3]"));
  EXPECT_EQ(last_[0].alert_id(), id);
  EXPECT_EQ(last_[0].revision(), 2u);
}

TEST_F(RulesTest, RepeatCallsEpisodeLastsUntilTheCountThMostRecentCallPlusTheWindow) {
  Only("repeat-calls");
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("13:00").Incident("I2").Call(false));
  const std::string first = LastAlertId();
  Apply(Ev("ack").At("13:05").Ack(first));
  // Exactly at the episode's end (c1 + 24 h): still the episode; the acknowledged alert is re-opened.
  EXPECT_THAT(Apply(Ev("c3").At("09:00", 1).Incident("I3").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-08T09:00:00Z V1/I2 [c1 c2 ack c3]"));
  EXPECT_EQ(LastAlertId(), first);
  EXPECT_THAT(Advance(T("09:10", 1)),
              ElementsAre("repeat-calls ESCALATED INSPECTOR 2024-09-08T09:10:00Z V1/I2 [c1 c2 ack c3]"));
  // The episode now ends at c2 + 24 h = 13:00; a call after it begins the next episode, with its own alert,
  // while the first keeps climbing.
  EXPECT_THAT(Apply(Ev("c4").At("13:00:01", 1).Incident("I4").Call(false)),
              ElementsAre("repeat-calls ESCALATED SUPERINTENDENT 2024-09-08T09:20:00Z V1/I2 [c1 c2 ack c3]",
                          "repeat-calls FIRING SUPERVISOR 2024-09-08T13:00:01Z V1/I4 [c3 c4]"));
  EXPECT_NE(LastAlertId(), first);
}

TEST_F(RulesTest, AReOpenedAlertFiresAtTheLevelItHadReached) {
  Only("repeat-calls");
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  const std::string id = LastAlertId();
  Advance(T("10:10"));  // INSPECTOR
  Apply(Ev("ack").At("10:15").Ack(id));
  EXPECT_THAT(Apply(Ev("c3").At("11:00").Call(false)),
              ElementsAre("repeat-calls FIRING INSPECTOR 2024-09-07T11:00:00Z V1/I1 [c1 c2 ack c3]"));
  EXPECT_EQ(last_[0].acknowledged_by(), "");
  EXPECT_EQ(FormatRfc3339(ToMicros(last_[0].acknowledge_by())), "2024-09-07T11:10:00Z");
  EXPECT_THAT(Advance(T("11:10")),
              ElementsAre("repeat-calls ESCALATED SUPERINTENDENT 2024-09-07T11:10:00Z V1/I1 [c1 c2 ack c3]"));
}

TEST_F(RulesTest, UnacknowledgedAlertClimbsOneLevelPerWindowUpToTheTop) {
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  EXPECT_THAT(Advance(T("10:09:59")), IsEmpty());
  EXPECT_THAT(Advance(T("10:10")), ElementsAre("repeat-calls ESCALATED INSPECTOR 2024-09-07T10:10:00Z V1/I1 [c1 c2]"));
  EXPECT_THAT(Advance(T("10:20")),
              ElementsAre("repeat-calls ESCALATED SUPERINTENDENT 2024-09-07T10:20:00Z V1/I1 [c1 c2]"));
  EXPECT_THAT(Advance(T("23:00")), IsEmpty());
}

TEST_F(RulesTest, AcknowledgedWithinTheWindowStopsEscalation) {
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  const std::string id = LastAlertId();
  EXPECT_THAT(Apply(Ev("ack").At("10:10").Ack(id)),
              ElementsAre("repeat-calls ACKNOWLEDGED SUPERVISOR 2024-09-07T10:10:00Z V1/I1 [c1 c2 ack]"));
  EXPECT_EQ(last_[0].acknowledged_by(), "SGT1");
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
}

TEST_F(RulesTest, AcknowledgingAnEscalatedAlertStopsItClimbing) {
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  const std::string id = LastAlertId();
  EXPECT_THAT(Apply(Ev("ack").At("10:15").Ack(id)),
              ElementsAre("repeat-calls ESCALATED INSPECTOR 2024-09-07T10:10:00Z V1/I1 [c1 c2]",
                          "repeat-calls ACKNOWLEDGED INSPECTOR 2024-09-07T10:15:00Z V1/I1 [c1 c2 ack]"));
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
  EXPECT_THAT(Apply(Ev("ack2").At("12:01").Ack(id)), IsEmpty());
}

TEST_F(RulesTest, AcknowledgingAnUnknownAlertIsNotFoundAndChangesNothing) {
  std::vector<v1::Alert> out;
  EXPECT_EQ(processor_.Apply(Ev("ack").At("10:15").Ack("al-nope"), &out).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(processor_.victim_count(), 0u);
  Apply(Ev("c1").At("10:20").Call(false));
  EXPECT_EQ(processor_.Apply(Ev("ack2").At("10:25").Ack("al-nope"), &out).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(processor_.FindVictim("V1")->seen_event_ids_size(), 1);
}

// --- potential-escalation: 3 distinct domestic-abuse incidents in 365 d -----------

TEST_F(RulesTest, PotentialEscalationFiresOnTheThirdDistinctIncident) {
  Only("potential-escalation");
  EXPECT_THAT(Apply(Ev("c1").At("10:00", -200).Incident("A").Call()), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").At("10:00", -100).Incident("B").Call()), IsEmpty());
  EXPECT_THAT(Apply(Ev("c3").At("10:00", -100).Incident("B").Call()), IsEmpty());  // same incident twice
  // Each incident is one item, at its first domestic-abuse call.
  EXPECT_THAT(Apply(Ev("c4").At("10:00").Incident("C").Call()),
              ElementsAre("potential-escalation FIRING SUPERVISOR 2024-09-07T10:00:00Z V1/C [c1 c2 c4]"));
  // Further calls on a counted incident neither count nor update the alert.
  EXPECT_THAT(Apply(Ev("c5").At("11:00").Incident("C").Call()), IsEmpty());
}

TEST_F(RulesTest, PotentialEscalationEpisodeEndsAtAReferralAndOnlyLaterIncidentsCountTowardsTheNext) {
  Only("potential-escalation");
  Apply(Ev("c1").At("10:00", -20).Incident("A").Call());
  Apply(Ev("c2").At("10:00", -10).Incident("B").Call());
  Apply(Ev("c3").At("10:00").Incident("C").Call());
  const std::string first = LastAlertId();
  Apply(Ev("m1").At("12:00").Incident("C").MaracReferred());
  EXPECT_THAT(Apply(Ev("c4").At("10:00", 5).Incident("D").Call()), IsEmpty());
  EXPECT_THAT(Apply(Ev("c5").At("10:00", 6).Incident("E").Call()), IsEmpty());
  EXPECT_THAT(Apply(Ev("c6").At("10:00", 7).Incident("F").Call()),
              ElementsAre("potential-escalation FIRING SUPERVISOR 2024-09-14T10:00:00Z V1/F [c4 c5 c6]"));
  EXPECT_NE(LastAlertId(), first);
}

TEST_F(RulesTest, PotentialEscalationIncidentsInTheEpisodeUpdateItsAlert) {
  Only("potential-escalation");
  Apply(Ev("c1").At("10:00", -20).Incident("A").Call());
  Apply(Ev("c2").At("10:00", -10).Incident("B").Call());
  Apply(Ev("c3").At("10:00").Incident("C").Call());
  const std::string id = LastAlertId();
  Advance(T("10:00", 29));  // climbed to the top meanwhile
  EXPECT_THAT(Apply(Ev("c4").At("10:00", 30).Incident("D").Call()),
              ElementsAre("potential-escalation ESCALATED SUPERINTENDENT 2024-10-07T10:00:00Z V1/C [c1 c2 c3 c4]"));
  EXPECT_EQ(LastAlertId(), id);
}

TEST_F(RulesTest, PotentialEscalationIgnoresIncidentsOutsideTheWindowAndNonDomestic) {
  Only("potential-escalation");
  Apply(Ev("c1").At("09:59:59", -365).Incident("A").Call());
  Apply(Ev("c2").At("10:00", -100).Incident("B").Call(false));
  Apply(Ev("c3").At("10:00", -50).Incident("B2").Call());
  EXPECT_THAT(Apply(Ev("c4").At("10:00").Incident("C").Call()), IsEmpty());
}

TEST_F(RulesTest, PotentialEscalationResolvesOnMaracReferral) {
  Only("potential-escalation");
  Apply(Ev("c1").At("10:00", -20).Incident("A").Call());
  Apply(Ev("c2").At("10:00", -10).Incident("B").Call());
  Apply(Ev("c3").At("10:00").Incident("C").Call());
  EXPECT_THAT(Apply(Ev("m1").At("12:00").Incident("C").MaracReferred()),
              ElementsAre("potential-escalation RESOLVED SUPERVISOR 2024-09-07T12:00:00Z V1/C [c1 c2 c3 m1]"));
}

// --- marker-on-call ------------------------------------------------------------------

TEST_F(RulesTest, MarkerOnCallFiresWhenTheMarkerArrivesAfterTheCall) {
  Only("marker-on-call");
  EXPECT_THAT(Apply(Ev("c1").At("10:00").Call(true, "S1")), IsEmpty());
  EXPECT_THAT(Apply(Ev("m1").At("10:02").Marker("S1", MarkerMatched::VIOLENCE)),
              ElementsAre("marker-on-call FIRING SUPERVISOR 2024-09-07T10:02:00Z V1/I1 [c1 m1]"));
}

TEST_F(RulesTest, MarkerOnCallFiresWhenAKnownMarkedSuspectIsInANewCall) {
  Only("marker-on-call");
  Apply(Ev("m1").At("10:00", -30).Incident("OLD").Marker("S1", MarkerMatched::WEAPONS));
  EXPECT_THAT(Apply(Ev("c1").At("10:00").Call(true, "S1")),
              ElementsAre("marker-on-call FIRING SUPERVISOR 2024-09-07T10:00:00Z V1/I1 [c1 m1]"));
}

TEST_F(RulesTest, MarkerOnCallNeedsADomesticAbuseCallAndACountingMarker) {
  Only("marker-on-call");
  EXPECT_THAT(Apply(Ev("c1").At("10:00").Call(false, "S1")), IsEmpty());
  EXPECT_THAT(Apply(Ev("m1").At("10:01").Marker("S1", MarkerMatched::VIOLENCE)), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").At("10:00").Incident("I2").Call(true, "S2")), IsEmpty());
  EXPECT_THAT(Apply(Ev("m2").At("10:02").Incident("I2").Marker("S2", MarkerMatched::DOMESTIC_ABUSE_PERPETRATOR)),
              IsEmpty());
}

TEST_F(RulesTest, MarkerOnCallUpdatesRatherThanDuplicates) {
  Only("marker-on-call");
  Apply(Ev("c1").At("10:00").Call(true, "S1"));
  Apply(Ev("m1").At("10:01").Marker("S1", MarkerMatched::VIOLENCE));
  EXPECT_THAT(Apply(Ev("m2").At("10:02").Marker("S1", MarkerMatched::WEAPONS)),
              ElementsAre("marker-on-call FIRING SUPERVISOR 2024-09-07T10:02:00Z V1/I1 [c1 m1 m2]"));
  EXPECT_EQ(last_[0].revision(), 2u);
}

// --- unit-unavailable --------------------------------------------------------------

TEST_F(RulesTest, UnitUnavailableFiresForAnImmediateIncident) {
  Only("unit-unavailable");
  Apply(Ev("c1").At("10:00").Call());
  Apply(Ev("g1").At("10:01").Graded(IncidentGraded::IMMEDIATE));
  EXPECT_THAT(Apply(Ev("u1").At("10:02").UnitUnavailable()),
              ElementsAre("unit-unavailable FIRING SUPERVISOR 2024-09-07T10:02:00Z V1/I1 [g1 u1]"));
  EXPECT_THAT(Apply(Ev("s1").At("10:03").SupervisorNotified()),
              ElementsAre("unit-unavailable RESOLVED SUPERVISOR 2024-09-07T10:03:00Z V1/I1 [g1 u1 s1]"));
}

TEST_F(RulesTest, UnitUnavailableFiresForAnUrgentArrestButNotForAPriorityIncident) {
  Only("unit-unavailable");
  Apply(Ev("g1").At("10:01").Graded(IncidentGraded::PRIORITY));
  EXPECT_THAT(Apply(Ev("u1").At("10:02").UnitUnavailable()), IsEmpty());
  // It fires on a unit_unavailable: an urgent arrest requested after one does not make it an alert...
  EXPECT_THAT(Apply(Ev("a1").At("10:03").ArrestRequested("R1")), IsEmpty());
  // ...the next unavailability, with the urgent arrest requested, does.
  EXPECT_THAT(Apply(Ev("u2").At("10:04").UnitUnavailable()),
              ElementsAre("unit-unavailable FIRING SUPERVISOR 2024-09-07T10:04:00Z V1/I1 [a1 u2]"));
}

TEST_F(RulesTest, UnitUnavailableDoesNotFireWhenASupervisorWasAlreadyTold) {
  Only("unit-unavailable");
  Apply(Ev("g1").At("10:01").Graded(IncidentGraded::SCHEDULED, /*urgent=*/true));
  Apply(Ev("s1").At("10:02").SupervisorNotified());
  EXPECT_THAT(Apply(Ev("u1").At("10:03").UnitUnavailable()), IsEmpty());
}

TEST_F(RulesTest, UnitUnavailableResolvesWhenAUnitIsAssigned) {
  Only("unit-unavailable");
  Apply(Ev("g1").At("10:01").Graded(IncidentGraded::IMMEDIATE));
  Apply(Ev("u1").At("10:02").UnitUnavailable());
  EXPECT_THAT(Apply(Ev("ua").At("10:04").UnitAssigned()),
              ElementsAre("unit-unavailable RESOLVED SUPERVISOR 2024-09-07T10:04:00Z V1/I1 [g1 u1 ua]"));
}

// --- arrest-deferred ---------------------------------------------------------------

TEST_F(RulesTest, ArrestDeferredWithoutAuthorityFiresAtOnce) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("d1").At("10:05").ArrestDeferred("R1")),
              ElementsAre("arrest-deferred FIRING SUPERVISOR 2024-09-07T10:05:00Z V1/I1 [a1 d1]"));
}

TEST_F(RulesTest, ArrestDeferredWithAuthorityOrForARoutineArrestDoesNotFire) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("d1").At("10:05").ArrestDeferred("R1", "SGT1", T("14:00"))), IsEmpty());
  Apply(Ev("a2").At("10:00").ArrestRequested("R2", ArrestRequested::ROUTINE));
  EXPECT_THAT(Apply(Ev("d2").At("10:06").ArrestDeferred("R2")), IsEmpty());
}

TEST_F(RulesTest, ArrestDeferredResolvesWhenAuthorisedLater) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  Apply(Ev("d1").At("10:05").ArrestDeferred("R1"));
  EXPECT_THAT(Apply(Ev("d2").At("10:08").ArrestDeferred("R1", "SGT1", T("12:00"))),
              ElementsAre("arrest-deferred RESOLVED SUPERVISOR 2024-09-07T10:08:00Z V1/I1 [a1 d1 d2]"));
}

// --- arrest-overdue ------------------------------------------------------------------

TEST_F(RulesTest, ArrestOverdueFiresAtTheDeadlineNotASecondBefore) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Advance(T("10:59:59")), IsEmpty());
  EXPECT_THAT(Advance(T("11:00")), ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]"));
  EXPECT_EQ(FormatRfc3339(ToMicros(last_[0].deadline())), "2024-09-07T11:00:00Z");
}

TEST_F(RulesTest, ArrestAttemptAtTheDeadlineIsInTime) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("t1").At("11:00").ArrestAttempted("R1", v1::ArrestAttempted::NOT_FOUND)), IsEmpty());
  EXPECT_THAT(Advance(T("20:00")), IsEmpty());
}

// Events stamped at an instant are applied before the deadlines falling on it; a deadline fires once stream time
// is past it (DOMAIN.md, "Exact readings").
TEST_F(RulesTest, ArrestAttemptAtTheDeadlineIsInTimeAfterOtherEventsAtThatInstant) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("x").Victim("V2").At("11:00").Call(false)), IsEmpty()) << "stream time is at it, not past";
  EXPECT_THAT(Apply(Ev("c1").Incident("I2").At("11:00").Call(false)), IsEmpty());
  EXPECT_THAT(Apply(Ev("t1").At("11:00").ArrestAttempted("R1")), IsEmpty());
  EXPECT_THAT(Advance(T("20:00")), IsEmpty());
}

TEST_F(RulesTest, ADeadlineFiresWhenStreamTimePassesItWithTheDeadlineAsItsTime) {
  Only("arrest-overdue");
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("x").Victim("V2").At("11:00").Call(false)), IsEmpty());
  EXPECT_THAT(Apply(Ev("y").Victim("V2").AtMicros(T("11:00") + 1).Incident("I2").Call(false)),
              ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]"));
}

TEST_F(RulesTest, AClockTickAtADeadlineLeavesItAndOnePastItFiresIt) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  std::vector<v1::Alert> out;
  ASSERT_TRUE(processor_.AdvanceTo(T("11:00"), &out).ok());
  EXPECT_THAT(Keep(out), IsEmpty());
  EXPECT_THAT(Apply(Ev("t1").At("11:00").ArrestAttempted("R1")), IsEmpty()) << "in time, after the tick";
  Apply(Ev("a2").At("11:00").ArrestRequested("R2"));
  ASSERT_TRUE(processor_.AdvanceTo(T("12:00"), &out).ok());
  EXPECT_THAT(Keep(out), IsEmpty()) << "R2 is due at 12:00";
  ASSERT_TRUE(processor_.AdvanceTo(T("12:00") + 1, &out).ok());
  EXPECT_THAT(Keep(out), ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T12:00:00Z V1/I1 [a2]"));
}

TEST_F(RulesTest, AnAcknowledgementAtTheEndOfItsWindowIsInTimeAfterOtherEventsAtThatInstant) {
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("10:00").Call(false));
  const std::string id = LastAlertId();
  EXPECT_THAT(Apply(Ev("x").Victim("V2").At("10:10").Call(false)), IsEmpty());
  EXPECT_THAT(Apply(Ev("ack").At("10:10").Ack(id)),
              ElementsAre("repeat-calls ACKNOWLEDGED SUPERVISOR 2024-09-07T10:10:00Z V1/I1 [c1 c2 ack]"));
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
}

TEST_F(RulesTest, ArrestOverdueCarriesItsDeadlineWhenNoticedLater) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("x").Victim("V2").At("13:30").Call(false)),
              ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]",
                          "arrest-overdue ESCALATED INSPECTOR 2024-09-07T11:10:00Z V1/I1 [a1]",
                          "arrest-overdue ESCALATED SUPERINTENDENT 2024-09-07T11:20:00Z V1/I1 [a1]"));
}

TEST_F(RulesTest, LateAttemptResolvesAfterTheAlertFired) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("t1").At("11:05").ArrestAttempted("R1")),
              ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]",
                          "arrest-overdue RESOLVED SUPERVISOR 2024-09-07T11:05:00Z V1/I1 [a1 t1]"));
}

TEST_F(RulesTest, AuthorisedDeferralMovesTheDeadlineAndUnauthorisedMovesNothing) {
  Only("arrest-overdue");
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  Apply(Ev("d1").At("10:10").ArrestDeferred("R1"));  // unauthorised: moves nothing
  EXPECT_THAT(Advance(T("11:00")), ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]"));
  Apply(Ev("k1").At("11:01").Ack(LastAlertId()));
  Apply(Ev("a2").At("11:00").ArrestRequested("R2"));
  EXPECT_THAT(Apply(Ev("d2").At("11:30").ArrestDeferred("R2", "SGT1", T("15:00"))), IsEmpty());
  EXPECT_THAT(Advance(T("14:59:59")), IsEmpty());
  EXPECT_THAT(Advance(T("15:00")), ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T15:00:00Z V1/I1 [a2 d2]"));
}

TEST_F(RulesTest, RoutineArrestHasNoDeadline) {
  Apply(Ev("a1").At("10:00").ArrestRequested("R1", ArrestRequested::ROUTINE));
  EXPECT_THAT(Advance(T("23:00")), IsEmpty());
}

// --- attendance-overdue ----------------------------------------------------------------

TEST_F(RulesTest, AttendanceOverdueForImmediateAt15Minutes) {
  Apply(Ev("g1").At("10:00").Graded(IncidentGraded::IMMEDIATE));
  EXPECT_THAT(Advance(T("10:14:59")), IsEmpty());
  EXPECT_THAT(Advance(T("10:15")),
              ElementsAre("attendance-overdue FIRING SUPERVISOR 2024-09-07T10:15:00Z V1/I1 [g1]"));
  EXPECT_THAT(Apply(Ev("ar").At("10:20").UnitArrived()),
              ElementsAre("attendance-overdue RESOLVED SUPERVISOR 2024-09-07T10:20:00Z V1/I1 [g1 ar]"));
}

TEST_F(RulesTest, AttendanceOverdueForPriorityAt60MinutesAndNoneForScheduled) {
  Apply(Ev("g1").At("10:00").Graded(IncidentGraded::PRIORITY));
  Apply(Ev("g2").At("10:00").Incident("I2").Graded(IncidentGraded::SCHEDULED));
  EXPECT_THAT(Advance(T("10:59:59")), IsEmpty());
  EXPECT_THAT(Advance(T("11:00")),
              ElementsAre("attendance-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [g1]"));
}

TEST_F(RulesTest, ArrivalAtTheDeadlineIsInTimeAndRegradingRestartsTheClock) {
  Apply(Ev("g1").At("10:00").Graded(IncidentGraded::PRIORITY));
  Apply(Ev("g2").At("10:30").Graded(IncidentGraded::IMMEDIATE));
  EXPECT_THAT(Advance(T("10:44:59")), IsEmpty());
  EXPECT_THAT(Apply(Ev("ar").At("10:45").UnitArrived()), IsEmpty());
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
}

// --- risk-assessment-overdue and closed-without-assessment ---------------------------

TEST_F(RulesTest, RiskAssessmentOverdue24HoursAfterTheFirstCall) {
  Only("risk-assessment-overdue");
  Apply(Ev("c1").At("10:00").Call());
  Apply(Ev("c2").At("11:00").Call());
  EXPECT_THAT(Advance(T("09:59:59", 1)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 1)),
              ElementsAre("risk-assessment-overdue FIRING SUPERVISOR 2024-09-08T10:00:00Z V1/I1 [c1]"));
  EXPECT_THAT(Apply(Ev("r1").At("10:05", 1).Assessed(RiskAssessed::MEDIUM)),
              ElementsAre("risk-assessment-overdue RESOLVED SUPERVISOR 2024-09-08T10:05:00Z V1/I1 [c1 r1]"));
}

TEST_F(RulesTest, NoRiskAssessmentDeadlineForANonDomesticIncidentOrAnAssessedOne) {
  Only("risk-assessment-overdue");
  Apply(Ev("c1").At("10:00").Call(false));
  Apply(Ev("c2").At("10:00").Incident("I2").Call());
  Apply(Ev("r2").At("10:00", 1).Incident("I2").Assessed(RiskAssessed::STANDARD));
  EXPECT_THAT(Advance(T("10:00", 5)), IsEmpty());
}

TEST_F(RulesTest, ClosedWithoutAssessmentFiresAtOnce) {
  Only("closed-without-assessment");
  Apply(Ev("c1").At("10:00").Call());
  EXPECT_THAT(Apply(Ev("x1").At("10:40").Closed()),
              ElementsAre("closed-without-assessment FIRING SUPERVISOR 2024-09-07T10:40:00Z V1/I1 [c1 x1]"));
  EXPECT_THAT(Apply(Ev("r1").At("10:45").Assessed(RiskAssessed::HIGH)),
              ElementsAre("closed-without-assessment RESOLVED SUPERVISOR 2024-09-07T10:45:00Z V1/I1 [c1 x1 r1]"));
}

TEST_F(RulesTest, ClosingAnAssessedOrNonDomesticIncidentRaisesNothing) {
  Only("closed-without-assessment");
  Apply(Ev("c1").At("10:00").Call());
  Apply(Ev("r1").At("10:20").Assessed(RiskAssessed::STANDARD));
  EXPECT_THAT(Apply(Ev("x1").At("10:40").Closed()), IsEmpty());
  Apply(Ev("c2").At("10:00").Incident("I2").Call(false));
  EXPECT_THAT(Apply(Ev("x2").At("10:40").Incident("I2").Closed()), IsEmpty());
}

// --- marac-referral-overdue --------------------------------------------------------

TEST_F(RulesTest, MaracReferralOverdue72HoursAfterAHighAssessment) {
  Apply(Ev("r1").At("10:00").Assessed(RiskAssessed::HIGH));
  EXPECT_THAT(Advance(T("09:59:59", 3)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 3)),
              ElementsAre("marac-referral-overdue FIRING SUPERVISOR 2024-09-10T10:00:00Z V1/I1 [r1]"));
  EXPECT_THAT(Apply(Ev("m1").At("11:00", 3).MaracReferred()),
              ElementsAre("marac-referral-overdue RESOLVED SUPERVISOR 2024-09-10T11:00:00Z V1/I1 [r1 m1]"));
}

TEST_F(RulesTest, DashYesCountMakesAnAssessmentHighEvenWhenRecordedLower) {
  Apply(Ev("r1").At("10:00").Assessed(RiskAssessed::MEDIUM, 14));
  Apply(Ev("r2").At("10:00").Incident("I2").Assessed(RiskAssessed::MEDIUM, 13));
  EXPECT_THAT(Advance(T("10:00", 3)),
              ElementsAre("marac-referral-overdue FIRING SUPERVISOR 2024-09-10T10:00:00Z V1/I1 [r1]"));
}

TEST_F(RulesTest, ReferralInTimeMeansNoAlert) {
  Apply(Ev("r1").At("10:00").Assessed(RiskAssessed::HIGH));
  EXPECT_THAT(Apply(Ev("m1").At("10:00", 3).MaracReferred()), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 30)), IsEmpty());
}

// --- disclosure-due-soon and disclosure-overdue ----------------------------------------

TEST_F(RulesTest, DisclosureWarnsAtDay21AndBreachesAtDay28) {
  Apply(Ev("d1").At("10:00").DisclosureRequested("APP1"));
  EXPECT_THAT(Advance(T("09:59:59", 21)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 21)),
              ElementsAre("disclosure-due-soon FIRING SUPERVISOR 2024-09-28T10:00:00Z V1/I1 [d1]"));
  EXPECT_THAT(Apply(Ev("k1").At("11:00", 21).Ack(LastAlertId())),
              ElementsAre("disclosure-due-soon ACKNOWLEDGED SUPERVISOR 2024-09-28T11:00:00Z V1/I1 [d1 k1]"));
  EXPECT_THAT(Advance(T("09:59:59", 28)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 28)),
              ElementsAre("disclosure-overdue FIRING INSPECTOR 2024-10-05T10:00:00Z V1/I1 [d1]"));
  EXPECT_THAT(Advance(T("10:00", 29)),
              ElementsAre("disclosure-overdue ESCALATED SUPERINTENDENT 2024-10-06T10:00:00Z V1/I1 [d1]"));
  EXPECT_THAT(Apply(Ev("x1").At("12:00", 29).DisclosureDecided("APP1")),
              ElementsAre("disclosure-due-soon RESOLVED SUPERVISOR 2024-10-06T12:00:00Z V1/I1 [d1 k1 x1]",
                          "disclosure-overdue RESOLVED SUPERINTENDENT 2024-10-06T12:00:00Z V1/I1 [d1 x1]"));
}

TEST_F(RulesTest, DisclosureDecidedInTimeRaisesNothing) {
  Apply(Ev("d1").At("10:00").DisclosureRequested("APP1"));
  Apply(Ev("x1").At("10:00", 20).DisclosureDecided("APP1"));
  EXPECT_THAT(Advance(T("10:00", 60)), IsEmpty());
}

// --- serial-perpetrator -----------------------------------------------------------

TEST_F(RulesTest, SerialPerpetratorFiresOnTheSecondVictim) {
  Only("serial-perpetrator");
  EXPECT_THAT(Apply(Ev("c1").Victim("VA").Incident("IA").At("10:00", -100).Call(true, "S9")), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").Victim("VA").Incident("IA2").At("10:00", -50).Call(true, "S9")), IsEmpty());
  EXPECT_THAT(Apply(Ev("c3").Victim("VB").Incident("IB").At("10:00").Call(true, "S9")),
              ElementsAre("serial-perpetrator FIRING INSPECTOR 2024-09-07T10:00:00Z VB/IB [c2 c3]"));
  EXPECT_EQ(last_[0].suspect_id(), "S9");
}

TEST_F(RulesTest, SerialPerpetratorNeedsDomesticAbuseCallsWithinTheWindow) {
  Only("serial-perpetrator");
  Apply(Ev("c1").Victim("VA").At("09:59:59", -365).Call(true, "S9"));
  Apply(Ev("c2").Victim("VC").At("10:00", -10).Call(false, "S9"));
  EXPECT_THAT(Apply(Ev("c3").Victim("VB").At("10:00").Call(true, "S9")), IsEmpty());
}

TEST_F(RulesTest, SerialPerpetratorEpisodeGivesEachVictimOneAlertOnItsFirstCallInIt) {
  Only("serial-perpetrator");
  Apply(Ev("c1").Victim("VA").Incident("IA").At("10:00").Call(true, "S9"));
  EXPECT_THAT(Apply(Ev("c2").Victim("VB").Incident("IB").At("10:00", 10).Call(true, "S9")),
              ElementsAre("serial-perpetrator FIRING INSPECTOR 2024-09-17T10:00:00Z VB/IB [c1 c2]"));
  const std::string b_alert = LastAlertId();
  // The first victim's first call in the episode raises its own alert.
  EXPECT_THAT(Apply(Ev("c3").Victim("VA").Incident("IA3").At("10:00", 20).Call(true, "S9")),
              ElementsAre("serial-perpetrator ESCALATED SUPERINTENDENT 2024-09-18T10:00:00Z VB/IB [c1 c2]",
                          "serial-perpetrator FIRING INSPECTOR 2024-09-27T10:00:00Z VA/IA3 [c2 c3]"));
  Apply(Ev("ack").Victim("VB").At("11:00", 20).Ack(b_alert));
  Advance(T("10:00", 29));  // the first victim's alert climbs meanwhile
  // The second victim's later call in the episode updates and re-opens its alert.
  EXPECT_THAT(Apply(Ev("c4").Victim("VB").Incident("IB4").At("10:00", 30).Call(true, "S9")),
              ElementsAre("serial-perpetrator FIRING SUPERINTENDENT 2024-10-07T10:00:00Z VB/IB [c1 c2 ack c3 c4]"));
  EXPECT_EQ(LastAlertId(), b_alert);
}

TEST_F(RulesTest, SerialPerpetratorEpisodeEndsAndTheNextOneRaisesNewAlerts) {
  Only("serial-perpetrator");
  Apply(Ev("c1").Victim("VA").Incident("IA").At("10:00").Call(true, "S9"));
  Apply(Ev("c2").Victim("VB").Incident("IB").At("10:00", 10).Call(true, "S9"));
  const std::string first = LastAlertId();
  Advance(T("10:00", 399));
  // The episode ends at c1 + 365 d; a call after it with one victim in the window begins nothing.
  EXPECT_THAT(Apply(Ev("c3").Victim("VA").Incident("IA3").At("10:00", 400).Call(true, "S9")), IsEmpty());
  EXPECT_THAT(Apply(Ev("c4").Victim("VC").Incident("IC").At("10:00", 401).Call(true, "S9")),
              ElementsAre("serial-perpetrator FIRING INSPECTOR 2025-10-13T10:00:00Z VC/IC [c3 c4]"));
  EXPECT_NE(LastAlertId(), first);
}

// --- duplicates and order ---------------------------------------------------------

TEST_F(RulesTest, DuplicateEventIsAppliedOnce) {
  Apply(Ev("c1").At("09:00").Call(false));
  EXPECT_THAT(Apply(Ev("c1").At("09:00").Call(false)), IsEmpty());
  EXPECT_EQ(processor_.FindVictim("V1")->calls_size(), 1);
}

TEST_F(RulesTest, SameEventIdWithOtherContentIsAConflict) {
  Apply(Ev("c1").At("09:00").Call(false));
  std::vector<v1::Alert> out;
  EXPECT_EQ(processor_.Apply(Ev("c1").At("09:05").Call(false), &out).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(out, IsEmpty());
}

TEST_F(RulesTest, LateCallCountsInTheWindowItBelongsTo) {
  Only("repeat-calls");
  Apply(Ev("c2").At("12:00").Call(false));
  EXPECT_THAT(Apply(Ev("c1").At("09:00").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T12:00:00Z V1/I1 [c1 c2]"));
}

TEST_F(RulesTest, LateEventWhoseDeadlineHasPassedFiresAtTheDeadline) {
  Apply(Ev("x").Victim("V2").At("15:00").Call(false));
  EXPECT_THAT(Apply(Ev("a1").At("10:00").ArrestRequested("R1")),
              ElementsAre("arrest-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [a1]",
                          "arrest-overdue ESCALATED INSPECTOR 2024-09-07T11:10:00Z V1/I1 [a1]",
                          "arrest-overdue ESCALATED SUPERINTENDENT 2024-09-07T11:20:00Z V1/I1 [a1]"));
}

class DisabledRuleTest : public RulesTest {
 protected:
  static RulesConfig Rules() {
    RulesConfig c = RulesConfig::Defaults();
    c.mutable_rule(RuleId::kRepeatCalls).enabled = false;
    c.mutable_rule(RuleId::kRiskAssessmentOverdue).deadline = 2 * kMicrosPerHour;
    return c;
  }
  DisabledRuleTest() : RulesTest(Rules()) {}
};

TEST_F(DisabledRuleTest, ConfigurationChangesWhatFiresAndWhen) {
  Apply(Ev("c1").At("09:00").Call());
  EXPECT_THAT(Apply(Ev("c2").At("10:00").Call()), IsEmpty());
  EXPECT_THAT(Advance(T("11:00")),
              ElementsAre("risk-assessment-overdue FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [c1]"));
}

TEST(AlertIdTest, IdsAreDeterministicAndDistinct) {
  auto run = [] {
    Engine engine(RulesConfig::Defaults());
    Processor p(&engine);
    std::vector<v1::Alert> out;
    EXPECT_TRUE(p.Apply(Ev("c1").At("09:00").Call(false), &out).ok());
    EXPECT_TRUE(p.Apply(Ev("c2").At("10:00").Incident("I2").Call(false), &out).ok());
    EXPECT_TRUE(p.Apply(Ev("c3").At("10:05").Incident("I3").Call(false), &out).ok());  // same episode
    EXPECT_TRUE(p.Apply(Ev("c4").At("09:00", 3).Incident("I4").Call(false), &out).ok());
    EXPECT_TRUE(p.Apply(Ev("c5").At("09:05", 3).Incident("I5").Call(false), &out).ok());  // the next episode
    std::vector<v1::Alert> fired;
    for (const auto& a : out) {
      if (a.state() == v1::FIRING) fired.push_back(a);
    }
    return fired;
  };
  auto a = run();
  auto b = run();
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].alert_id(), b[0].alert_id());
  EXPECT_EQ(a[0].alert_id(), a[1].alert_id());
  EXPECT_NE(a[0].alert_id(), a[2].alert_id());
  EXPECT_FALSE(a[0].reason().empty());
  EXPECT_EQ(a[0].threshold(), "2 calls in 24h");
}

// --- abandoned-call: an abandoned 999 call not returned within 10 min -------------------

TEST_F(RulesTest, AbandonedCallNotReturnedFiresAtItsDeadlineAndTheReturnResolvesIt) {
  Only("abandoned-call");
  EXPECT_THAT(Apply(Ev("a1").At("10:00").Call().Abandoned()), IsEmpty());
  EXPECT_THAT(Advance(T("10:09:59")), IsEmpty());
  EXPECT_THAT(Advance(T("10:10")), ElementsAre("abandoned-call FIRING SUPERVISOR 2024-09-07T10:10:00Z V1/I1 [a1]"));
  EXPECT_THAT(Apply(Ev("cr1").At("10:15").CallReturned()),
              ElementsAre("abandoned-call RESOLVED SUPERVISOR 2024-09-07T10:15:00Z V1/I1 [a1 cr1]"));
}

TEST_F(RulesTest, AbandonedCallReturnedExactlyAtTheDeadlineIsInTime) {
  Only("abandoned-call");
  Apply(Ev("a1").At("10:00").Call().Abandoned());
  EXPECT_THAT(Apply(Ev("cr1").At("10:10").CallReturned()), IsEmpty());
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
}

TEST_F(RulesTest, AbandonedCallOnlyCountsForEmergencyCalls) {
  Only("abandoned-call");
  Apply(Ev("a1").At("10:00").Call().Channel(v1::CallReceived::NON_EMERGENCY).Abandoned());
  Apply(Ev("c2").At("10:01").Incident("I2").Call());
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
}

TEST_F(RulesTest, EachAbandonedCallStartsItsOwnClockAndOneAlertPerIncidentCarriesThem) {
  Only("abandoned-call");
  Apply(Ev("a1").At("10:00").Call().Abandoned());
  Apply(Ev("a2").At("10:05").Call().Abandoned());
  EXPECT_THAT(Advance(T("10:10")), ElementsAre("abandoned-call FIRING SUPERVISOR 2024-09-07T10:10:00Z V1/I1 [a1]"));
  EXPECT_THAT(Advance(T("10:15")), ElementsAre("abandoned-call FIRING SUPERVISOR 2024-09-07T10:15:00Z V1/I1 [a1 a2]"));
  EXPECT_THAT(Apply(Ev("cr1").At("10:18").CallReturned()),
              ElementsAre("abandoned-call RESOLVED SUPERVISOR 2024-09-07T10:18:00Z V1/I1 [a1 a2 cr1]"));
}

TEST_F(RulesTest, AReturnAnswersOnlyTheAbandonedCallsBeforeIt) {
  Only("abandoned-call");
  Apply(Ev("a1").At("10:00").Call().Abandoned());
  EXPECT_THAT(Apply(Ev("cr1").At("10:03").CallReturned()), IsEmpty());
  Apply(Ev("a2").At("10:05").Call().Abandoned());
  EXPECT_THAT(Advance(T("10:10")), IsEmpty());
  EXPECT_THAT(Advance(T("10:15")), ElementsAre("abandoned-call FIRING SUPERVISOR 2024-09-07T10:15:00Z V1/I1 [a2]"));
}

// --- suspect-outstanding: an urgent arrest that found nobody, no further attempt in 24 h -----

TEST_F(RulesTest, SuspectOutstanding24HoursAfterANotFoundAttemptAndAFurtherAttemptResolvesIt) {
  Only("suspect-outstanding");
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  EXPECT_THAT(Apply(Ev("t1").At("10:30").ArrestAttempted("R1", v1::ArrestAttempted::NOT_FOUND)), IsEmpty());
  EXPECT_THAT(Advance(T("10:29:59", 1)), IsEmpty());
  EXPECT_THAT(Advance(T("10:30", 1)),
              ElementsAre("suspect-outstanding FIRING SUPERVISOR 2024-09-08T10:30:00Z V1/I1 [t1]"));
  EXPECT_THAT(Advance(T("11:30", 1)),
              ElementsAre("suspect-outstanding ESCALATED INSPECTOR 2024-09-08T11:30:00Z V1/I1 [t1]"));
  EXPECT_THAT(Apply(Ev("t2").At("12:00", 1).ArrestAttempted("R1")),
              ElementsAre("suspect-outstanding RESOLVED INSPECTOR 2024-09-08T12:00:00Z V1/I1 [t1 t2]"));
}

TEST_F(RulesTest, EachNotFoundAttemptRestartsTheSuspectOutstandingClock) {
  Only("suspect-outstanding");
  Apply(Ev("a1").At("10:00").ArrestRequested("R1"));
  Apply(Ev("t1").At("10:30").ArrestAttempted("R1", v1::ArrestAttempted::NOT_FOUND));
  EXPECT_THAT(Apply(Ev("t2").At("09:00", 1).ArrestAttempted("R1", v1::ArrestAttempted::NOT_FOUND)), IsEmpty());
  EXPECT_THAT(Advance(T("10:30", 1)), IsEmpty());
  EXPECT_THAT(Advance(T("09:00", 2)),
              ElementsAre("suspect-outstanding FIRING SUPERVISOR 2024-09-09T09:00:00Z V1/I1 [t2]"));
}

TEST_F(RulesTest, SuspectOutstandingNeedsAnUrgentArrestAndTakesAFurtherAttemptAtTheDeadlineAsInTime) {
  Only("suspect-outstanding");
  Apply(Ev("a1").At("10:00").ArrestRequested("R1", ArrestRequested::ROUTINE));
  Apply(Ev("t1").At("10:30").ArrestAttempted("R1", v1::ArrestAttempted::NOT_FOUND));
  Apply(Ev("a2").At("10:00").Incident("I2").ArrestRequested("R2"));
  Apply(Ev("t2").At("10:30").Incident("I2").ArrestAttempted("R2", v1::ArrestAttempted::NOT_FOUND));
  EXPECT_THAT(Apply(Ev("t3").At("10:30", 1).Incident("I2").ArrestAttempted("R2")), IsEmpty());
  EXPECT_THAT(Advance(T("12:00", 3)), IsEmpty());
}

// --- repeat-marac: a new domestic-abuse incident within 365 d of the last referral ------------

TEST_F(RulesTest, RepeatMaracFiresOnANewIncidentAfterAReferralAndTheNextReferralResolvesIt) {
  Only("repeat-marac");
  Apply(Ev("c1").At("08:00").Call());
  Apply(Ev("m1").At("09:00").MaracReferred());
  EXPECT_THAT(Apply(Ev("c2").At("10:00").Call()), IsEmpty());  // I1 began before the referral
  EXPECT_THAT(Apply(Ev("c3").At("10:00", 10).Incident("I2").Call(false)), IsEmpty());  // not domestic abuse
  EXPECT_THAT(Apply(Ev("c4").At("10:00", 11).Incident("I3").Call()),
              ElementsAre("repeat-marac FIRING SUPERVISOR 2024-09-18T10:00:00Z V1/I3 [c4]"));
  EXPECT_THAT(Apply(Ev("c5").At("11:00", 11).Incident("I3").Call()),
              ElementsAre("repeat-marac FIRING SUPERVISOR 2024-09-18T11:00:00Z V1/I3 [c4 c5]"));
  EXPECT_THAT(Apply(Ev("m2").At("12:00", 11).MaracReferred()),
              ElementsAre("repeat-marac RESOLVED SUPERVISOR 2024-09-18T12:00:00Z V1/I3 [c4 c5 m2]"));
}

TEST_F(RulesTest, RepeatMaracWindowIncludesExactly365Days) {
  Only("repeat-marac");
  Apply(Ev("m1").At("09:00").MaracReferred());
  EXPECT_THAT(Apply(Ev("c1").At("09:00:01", 365).Incident("I2").Call()), IsEmpty());
}

TEST_F(RulesTest, RepeatMaracCountsAnIncidentExactly365DaysAfterTheReferral) {
  Only("repeat-marac");
  Apply(Ev("m1").At("09:00").MaracReferred());
  EXPECT_THAT(Apply(Ev("c1").At("09:00", 365).Incident("I2").Call()),
              ElementsAre("repeat-marac FIRING SUPERVISOR 2025-09-07T09:00:00Z V1/I2 [c1]"));
}

TEST_F(RulesTest, MaracReferralOverdueRunsFromTheIncidentsFirstHighAssessmentNotYetReferred) {
  Only("marac-referral-overdue");
  Apply(Ev("r1").At("10:00").Assessed(RiskAssessed::HIGH));
  Apply(Ev("r2").At("10:00", 1).Assessed(RiskAssessed::HIGH));  // the same incident: the clock stands
  EXPECT_THAT(Advance(T("10:00", 3)),
              ElementsAre("marac-referral-overdue FIRING SUPERVISOR 2024-09-10T10:00:00Z V1/I1 [r1]"));
  EXPECT_THAT(Apply(Ev("m1").At("11:00", 3).Incident("OTHER").MaracReferred()),  // whatever incident it carries
              ElementsAre("marac-referral-overdue RESOLVED SUPERVISOR 2024-09-10T11:00:00Z V1/I1 [r1 m1]"));
  // After the referral, a new HIGH assessment starts a new clock (and a new alert).
  Apply(Ev("r3").At("12:00", 3).Assessed(RiskAssessed::HIGH));
  EXPECT_THAT(Advance(T("12:00", 6)),
              ElementsAre("marac-referral-overdue FIRING SUPERVISOR 2024-09-13T12:00:00Z V1/I1 [r3]"));
}

// --- strangulation disclosed makes an assessment HIGH ---------------------------------------

TEST_F(RulesTest, StrangulationDisclosedMakesAnAssessmentHighForTheMaracDeadline) {
  Only("marac-referral-overdue");
  Apply(Ev("r1").At("10:00").Assessed(RiskAssessed::STANDARD, 3).Strangulation());
  EXPECT_THAT(Advance(T("10:00", 3)),
              ElementsAre("marac-referral-overdue FIRING SUPERVISOR 2024-09-10T10:00:00Z V1/I1 [r1]"));
}

// --- v2 readings of marker-on-call and risk-assessment-overdue --------------------------------

TEST_F(RulesTest, MarkerOnCallTakesNoClosedIncidentWhenAMarkerArrivesOnANewOne) {
  Only("marker-on-call");
  Apply(Ev("c1").At("10:00").Call(true, "S1"));
  Apply(Ev("x1").At("11:00").Closed());
  EXPECT_THAT(Apply(Ev("m1").At("12:00").Incident("I2").Marker("S1", MarkerMatched::VIOLENCE)), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").At("12:05").Incident("I2").Call(true, "S1")),
              ElementsAre("marker-on-call FIRING SUPERVISOR 2024-09-07T12:05:00Z V1/I2 [c2 m1]"));
}

TEST_F(RulesTest, MarkerOnCallNeedsADomesticAbuseCallNamingTheSuspect) {
  Only("marker-on-call");
  Apply(Ev("c1").At("10:00").Call(true));             // no suspect named
  Apply(Ev("c2").At("10:01").Call(false, "S1"));      // names S1, not domestic abuse
  EXPECT_THAT(Apply(Ev("m1").At("10:02").Marker("S1", MarkerMatched::WEAPONS)), IsEmpty());
}

TEST_F(RulesTest, RiskAssessmentOverdueCountsFromTheFirstDomesticAbuseCall) {
  Only("risk-assessment-overdue");
  Apply(Ev("c1").At("10:00").Call(false));
  Apply(Ev("c2").At("12:00").Call(true));
  EXPECT_THAT(Advance(T("11:59:59", 1)), IsEmpty());
  EXPECT_THAT(Advance(T("12:00", 1)),
              ElementsAre("risk-assessment-overdue FIRING SUPERVISOR 2024-09-08T12:00:00Z V1/I1 [c2]"));
}

TEST_F(RulesTest, ClosedWithoutAssessmentInhibitsRiskAssessmentOverdue) {
  Apply(Ev("c1").At("10:00").Call());
  EXPECT_THAT(Apply(Ev("x1").At("11:00").Closed()),
              ElementsAre("closed-without-assessment FIRING SUPERVISOR 2024-09-07T11:00:00Z V1/I1 [c1 x1]"));
  Only("risk-assessment-overdue");
  EXPECT_THAT(Advance(T("12:00", 2)), IsEmpty());
}

// --- protections and bail ---------------------------------------------------------------------

using v1::BailDecided;
using v1::CourtHearingRecorded;
using v1::ProtectionRecorded;

TEST_F(RulesTest, ACallNamingASuspectUnderAnOrderInForceIsABreach) {
  Only("protection-breach-call");
  Apply(Ev("p1").At("10:00").Protection("P1", ProtectionRecorded::DVPO, "S1"));
  EXPECT_THAT(Apply(Ev("c1").At("12:00").Call(false, "S1")),
              ElementsAre("protection-breach-call FIRING SUPERVISOR 2024-09-07T12:00:00Z V1/I1 [p1 c1]"));
  EXPECT_THAT(Apply(Ev("c2").At("12:05").Incident("I2").Call(true, "S2")), IsEmpty());
  EXPECT_THAT(Apply(Ev("c3").At("12:09").Incident("I3").Call(true)), IsEmpty());  // names nobody
}

TEST_F(RulesTest, ANoticeWithoutExpiryIsInForce48HoursInclusive) {
  Only("protection-breach-call");
  Apply(Ev("p1").At("10:00").Protection("N1", ProtectionRecorded::DVPN, "S1"));
  EXPECT_THAT(Apply(Ev("c1").At("10:00", 2).Call(true, "S1")),
              ElementsAre("protection-breach-call FIRING SUPERVISOR 2024-09-09T10:00:00Z V1/I1 [p1 c1]"));
  EXPECT_THAT(Apply(Ev("c2").At("10:00:01", 2).Incident("I2").Call(true, "S1")), IsEmpty());
}

TEST_F(RulesTest, AnEndedProtectionIsNotInForceButAHearingEndsNothing) {
  Only("protection-breach-call");
  Apply(Ev("p1").At("10:00").Protection("P1", ProtectionRecorded::NON_MOLESTATION_ORDER, "S1", T("10:00", 30)));
  Apply(Ev("p2").At("10:00").Protection("N2", ProtectionRecorded::DAPN, "S2"));
  Apply(Ev("e1").At("11:00").ProtectionEnded("P1"));
  Apply(Ev("h2").At("11:00").Hearing("N2", CourtHearingRecorded::REFUSED));
  EXPECT_THAT(Apply(Ev("c1").At("12:00").Call(true, "S1")), IsEmpty());
  EXPECT_THAT(Apply(Ev("c2").At("12:00").Incident("I2").Call(true, "S2")),
              ElementsAre("protection-breach-call FIRING SUPERVISOR 2024-09-07T12:00:00Z V1/I2 [p2 c2]"));
}

TEST_F(RulesTest, BailWithConditionsProtectsUntilItsEndOrADecisionOtherThanExtended) {
  Only("protection-breach-call");
  Apply(Ev("b1").At("10:00").Bail("B1", "S1", T("10:00", 10)));
  Apply(Ev("b2").At("10:00").Bail("B2", "S2", T("10:00", 10), /*conditions=*/false));
  EXPECT_THAT(Apply(Ev("c1").At("10:00", 5).Call(true, "S1")),
              ElementsAre("protection-breach-call FIRING SUPERVISOR 2024-09-12T10:00:00Z V1/I1 [b1 c1]"));
  EXPECT_THAT(Apply(Ev("c2").At("10:00", 5).Incident("I2").Call(true, "S2")), IsEmpty());
  Apply(Ev("d1").At("10:00", 6).BailDecided("B1", BailDecided::CHARGED));
  EXPECT_THAT(Apply(Ev("c3").At("10:00", 7).Incident("I3").Call(true, "S1")), IsEmpty());
}

TEST_F(RulesTest, ANoticeUnheardFor48HoursGoesToTheInspectorAndAnyHearingResolvesIt) {
  Only("protection-hearing-overdue");
  Apply(Ev("p1").At("10:00").Protection("N1", ProtectionRecorded::DVPN, "S1"));
  Apply(Ev("e1").At("12:00").ProtectionEnded("N1"));  // ended early: still needs its hearing
  EXPECT_THAT(Advance(T("09:59:59", 2)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 2)),
              ElementsAre("protection-hearing-overdue FIRING INSPECTOR 2024-09-09T10:00:00Z V1/I1 [p1]"));
  EXPECT_THAT(Apply(Ev("h1").At("10:30", 2).Hearing("N1", CourtHearingRecorded::ADJOURNED)),
              ElementsAre("protection-hearing-overdue RESOLVED INSPECTOR 2024-09-09T10:30:00Z V1/I1 [p1 h1]"));
}

TEST_F(RulesTest, AHearingAtExactly48HoursIsInTimeAndOrdersNeedNone) {
  Only("protection-hearing-overdue");
  Apply(Ev("p1").At("10:00").Protection("N1", ProtectionRecorded::DAPN, "S1"));
  Apply(Ev("p2").At("10:00").Protection("O2", ProtectionRecorded::DVPO, "S1"));
  EXPECT_THAT(Apply(Ev("h1").At("10:00", 2).Hearing("N1")), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 9)), IsEmpty());
}

TEST_F(RulesTest, BailExpiringWarnsSevenDaysBeforeAndAnExtensionStartsANewClock) {
  Only("bail-expiring");
  Apply(Ev("b1").At("10:00").Bail("B1", "S1", T("10:00", 28)));
  EXPECT_THAT(Advance(T("09:59:59", 21)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 21)),
              ElementsAre("bail-expiring FIRING SUPERVISOR 2024-09-28T10:00:00Z V1/I1 [b1]"));
  EXPECT_THAT(Apply(Ev("d1").At("09:00", 22).BailDecided("B1", BailDecided::EXTENDED, T("10:00", 56))),
              ElementsAre("bail-expiring RESOLVED SUPERVISOR 2024-09-29T09:00:00Z V1/I1 [b1 d1]"));
  EXPECT_THAT(Advance(T("09:59:59", 49)), IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 49)),
              ElementsAre("bail-expiring FIRING SUPERVISOR 2024-10-26T10:00:00Z V1/I1 [d1]"));
}

TEST_F(RulesTest, BailRecordedInsideTheWarningPeriodWarnsAtOnceAndADecisionInTimeRaisesNothing) {
  Only("bail-expiring");
  // The warning point is the recording itself: it fires once stream time is past it, stamped with it.
  EXPECT_THAT(Apply(Ev("b1").At("10:00").Bail("B1", "S1", T("10:00", 3))), IsEmpty());
  EXPECT_THAT(Apply(Ev("b2").At("10:00:01").Incident("I2").Bail("B2", "S1", T("10:00", 28))),
              ElementsAre("bail-expiring FIRING SUPERVISOR 2024-09-07T10:00:00Z V1/I1 [b1]"));
  Advance(T("10:00", 20));  // the first alert climbs meanwhile
  EXPECT_THAT(Apply(Ev("d2").At("10:00", 21).Incident("I2").BailDecided("B2", BailDecided::NO_FURTHER_ACTION)),
              IsEmpty());
  EXPECT_THAT(Advance(T("10:00", 40)), IsEmpty());
}

// --- per-force overrides ------------------------------------------------------------------------

TEST(PerForceTest, AnEventIsJudgedByItsForcesSettings) {
  auto rules = ParseRulesYaml("overrides: [{force: kent, rules: {repeat-calls: {count: 3}}}]", "test.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  Engine engine(*rules);
  Processor p(&engine);
  std::vector<v1::Alert> out;
  auto apply = [&](v1::Event e) {
    out.clear();
    EXPECT_TRUE(p.Apply(e, &out).ok());
    std::vector<v1::Alert> kept;
    for (const auto& a : out) {
      if (a.rule() == "repeat-calls") kept.push_back(a);
    }
    return Describe(kept);
  };
  v1::Event kent1 = Ev("k1").Victim("VK").At("09:00").Call(false);
  kent1.set_force("kent");
  v1::Event kent2 = Ev("k2").Victim("VK").At("10:00").Call(false);
  kent2.set_force("kent");
  v1::Event kent3 = Ev("k3").Victim("VK").At("11:00").Call(false);
  kent3.set_force("kent");
  EXPECT_THAT(apply(kent1), IsEmpty());
  EXPECT_THAT(apply(kent2), IsEmpty());  // Kent needs three
  EXPECT_THAT(apply(kent3), ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T11:00:00Z VK/I1 [k1 k2 k3]"));
  EXPECT_THAT(apply(Ev("e1").Victim("VE").At("11:00").Call(false)), IsEmpty());
  EXPECT_THAT(apply(Ev("e2").Victim("VE").At("11:05").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T11:05:00Z VE/I1 [e1 e2]"));
}

// --- rules changed at a position in the log ----------------------------------------------------

TEST_F(RulesTest, ARulesChangeAppliesFromItsPositionAndAlertsCarryTheirVersion) {
  Only("repeat-calls");
  Apply(Ev("c1").At("09:00").Call(false));
  Apply(Ev("c2").At("09:30").Call(false));
  EXPECT_EQ(last_[0].rules_version(), "default");
  EXPECT_THAT(Apply(Ev("rc").Victim("__rules__").At("01:00").RulesChanged(
                  "2", "rules: {repeat-calls: {count: 3, acknowledge_within: 1h}}")),
              IsEmpty());
  EXPECT_EQ(processor_.stream_time(), T("09:30"));  // its occurred_at moves no clock
  // The alert raised before keeps its version's acknowledgement window (10 min).
  EXPECT_THAT(Advance(T("09:40")),
              ElementsAre("repeat-calls ESCALATED INSPECTOR 2024-09-07T09:40:00Z V1/I1 [c1 c2]"));
  Apply(Ev("d1").Victim("V2").At("10:00").Call(false));
  EXPECT_THAT(Apply(Ev("d2").Victim("V2").At("10:05").Call(false)), IsEmpty());  // three now
  EXPECT_THAT(Apply(Ev("d3").Victim("V2").At("10:10").Call(false)),
              ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T10:10:00Z V2/I1 [d1 d2 d3]"));
  EXPECT_EQ(last_[0].rules_version(), "2");
  EXPECT_EQ(FormatRfc3339(ToMicros(last_[0].acknowledge_by())), "2024-09-07T11:10:00Z");
}

TEST_F(RulesTest, AfterARulesChangeRunningClocksKeepTheirDeadlineAndADisabledRuleRaisesNothingNew) {
  Apply(Ev("c1").At("10:00").Call());
  Apply(Ev("a1").At("10:00").Incident("I2").ArrestRequested("R1"));
  Apply(Ev("rc").Victim("__rules__").At("10:30").RulesChanged(
      "2", "rules: {risk-assessment-overdue: {deadline: 48h}, arrest-overdue: {enabled: false}}"));
  Only("arrest-overdue");
  EXPECT_THAT(Advance(T("12:00")), IsEmpty());
  Only("risk-assessment-overdue");
  EXPECT_THAT(Advance(T("10:00", 1)),
              ElementsAre("risk-assessment-overdue FIRING SUPERVISOR 2024-09-08T10:00:00Z V1/I1 [c1]"));
}

TEST_F(RulesTest, ARulesChangeThatIsNotValidRulesIsRefused) {
  std::vector<v1::Alert> out;
  const absl::Status s =
      processor_.Apply(Ev("rc").At("10:00").RulesChanged("2", "rules: {repeat-calls: {count: 1}}"), &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("rule 'repeat-calls', field 'count'"));
  EXPECT_EQ(processor_.rules().version(), "default");
}

}  // namespace
}  // namespace vigil
