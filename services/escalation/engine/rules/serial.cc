// serial-perpetrator, the victim's side: a domestic-abuse call naming a
// suspect sends a link to the suspect view (engine.cc, Engine::ApplyLink),
// whose finding comes back to the victim and raises the alert here. The
// episode is the suspect's; each victim has one alert per episode, raised on
// its first call in the episode and updated (re-opened if acknowledged) by its
// later ones.
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class SerialUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    if (!step.Enabled(RuleId::kSerialPerpetrator)) return;
    if (e.has_call_received()) {
      const v1::CallReceived& p = e.call_received();
      if (!p.domestic_abuse() || p.suspect_id().empty()) return;
      v1::SuspectLink& link = step.out().suspect_links.emplace_back();
      link.set_suspect_id(p.suspect_id());
      link.set_victim_id(e.victim_id());
      link.set_incident_id(e.incident_id());
      link.set_event_id(e.event_id());
      link.set_at(t);
      link.set_force(e.force());
      return;
    }
    if (e.has_suspect_finding()) RaiseSerialFinding(step, e.suspect_finding());
  }
};

}  // namespace

void RaiseSerialFinding(Step& step, const v1::SuspectFinding& f) {
    if (!step.Enabled(RuleId::kSerialPerpetrator)) return;
    step.Raise({.rule = RuleId::kSerialPerpetrator,
                .key = absl::StrCat("suspect ", f.suspect_id(), " episode ", FormatRfc3339(f.episode_start())),
                .incident_id = f.incident_id(),
                .at = f.at(),
                .reason = absl::StrCat("The suspect in this domestic-abuse call is linked to domestic-abuse calls "
                                       "about ",
                                       f.victim_count(), " different victims within ",
                                       FormatDuration(step.rules().rule(RuleId::kSerialPerpetrator).window),
                                       ": a possible serial perpetrator."),
                .evidence = {f.evidence_event_ids().begin(), f.evidence_event_ids().end()},
                .trigger = f.event_id(),
                .suspect_id = f.suspect_id(),
                .evidence_total = f.evidence_total(),
                .reopen = true});
}

std::unique_ptr<RuleUnit> MakeSerialUnit() { return std::make_unique<SerialUnit>(); }

}  // namespace vigil
