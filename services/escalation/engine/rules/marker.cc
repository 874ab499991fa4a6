// marker-on-call: a domestic-abuse call whose suspect has a marker that counts
// (VIOLENCE or WEAPONS by default), the marker arriving before or after the call.
// A marker for a suspect applies to the victim's domestic-abuse calls naming
// that suspect, on any incident not closed when the later of marker and call
// is applied (DOMAIN.md, "Exact readings").
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class MarkerUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    if (e.has_call_received()) {
      if (!e.call_received().domestic_abuse()) return;
      if (live::Incident* i = v.FindIncident(e.incident_id())) Evaluate(step, *i, t);
      return;
    }
    if (!e.has_marker_matched() || !Counts(step, e.marker_matched().marker())) return;
    const live::SuspectRef suspect = v.names.Find<live::SuspectTag>(e.marker_matched().suspect_id());
    for (const live::Incident& in : v.incidents) {
      if (std::find(in.suspects.begin(), in.suspects.end(), suspect) != in.suspects.end()) Evaluate(step, in, t);
    }
  }

 private:
  static bool Counts(const Step& step, int marker) {
    const auto& m = step.rules().rule(RuleId::kMarkerOnCall).markers;
    return std::find(m.begin(), m.end(), marker) != m.end();
  }

  static void Evaluate(Step& step, const live::Incident& incident, Micros at) {
    // incident_closed is final: a closed incident takes no marker alert, whichever came last.
    if (!step.Enabled(RuleId::kMarkerOnCall) || !incident.domestic_abuse || incident.closed) return;
    const live::Victim& v = step.victim();
    std::vector<std::string> evidence;
    std::vector<std::string> names;
    std::string suspect;
    for (const live::Marker& m : v.markers) {
      if (!Counts(step, m.marker)) continue;
      if (std::find(incident.suspects.begin(), incident.suspects.end(), m.suspect) == incident.suspects.end()) continue;
      if (suspect.empty()) suspect = v.names[m.suspect];
      evidence.push_back(v.names[m.event]);
      std::string name = v1::MarkerMatched::Marker_Name(static_cast<v1::MarkerMatched::Marker>(m.marker));
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
    }
    if (evidence.empty()) return;
    const std::string& first_call = v.names[incident.first_call_event];
    evidence.insert(evidence.begin(), first_call);
    const std::string& id = v.names[incident.id];
    step.Raise({.rule = RuleId::kMarkerOnCall,
                .key = id,
                .incident_id = id,
                .at = at,
                .reason = absl::StrCat("Domestic-abuse call where the suspect has a ", absl::StrJoin(names, " and "),
                                       " warning marker: treat the risk as high."),
                .evidence = std::move(evidence),
                .trigger = first_call,
                .suspect_id = std::move(suspect)});
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeMarkerUnit() { return std::make_unique<MarkerUnit>(); }

}  // namespace vigil
