#include "services/escalation/engine/risk_profile.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace vigil {

using v1::RiskProfile;

v1::RiskProfile BuildRiskProfile(const v1::state::VictimState& v, const RulesConfig& rules) {
  RiskProfile p;
  p.set_victim_id(v.victim_id());
  const Micros now = v.last_event_at();
  *p.mutable_as_of() = ToTimestamp(now);
  p.set_calls_total(static_cast<uint32_t>(v.calls_total()));
  p.set_incidents_total(static_cast<uint32_t>(v.incidents_total()));
  const RuleSettings& repeat = rules.rule(RuleId::kRepeatCalls);
  const RuleSettings& escalation = rules.rule(RuleId::kPotentialEscalation);
  absl::flat_hash_set<std::string> da_incidents;
  uint32_t recent_calls = 0;
  for (const auto& c : v.calls()) {
    if (c.at() >= now - 24 * kMicrosPerHour && c.at() <= now) ++recent_calls;
    if (c.domestic_abuse() && c.at() >= now - escalation.window && c.at() <= now) da_incidents.insert(c.incident_id());
  }
  p.set_calls_last_24h(recent_calls);
  p.set_domestic_abuse_incidents_last_365d(static_cast<uint32_t>(da_incidents.size()));
  p.set_marac_referred(v.marac_referrals_size() > 0);
  if (v.marac_referrals_size() > 0) {
    *p.mutable_last_marac_referral() =
        ToTimestamp(*std::max_element(v.marac_referrals().begin(), v.marac_referrals().end()));
  }
  for (const auto& r : v.protections()) {
    if (!r.has_recorded()) continue;
    const bool ended = r.has_ended() && r.ended_at() <= now;
    const bool expired = r.has_until() && r.until() < now;
    RiskProfile::Protection out;
    out.set_protection_id(r.protection_id());
    out.set_kind(static_cast<v1::ProtectionRecorded::Kind>(r.kind()));
    out.set_bail(r.is_bail());
    out.set_suspect_id(r.suspect_id());
    *out.mutable_recorded_at() = ToTimestamp(r.recorded_at());
    if (r.has_until()) *out.mutable_until() = ToTimestamp(r.until());
    out.set_with_conditions(r.with_conditions());
    const bool in_force = r.recorded_at() <= now && !ended && !expired && (!r.is_bail() || r.with_conditions());
    if (in_force) *p.add_protections_in_force() = out;
    if (r.is_bail() && !ended) *p.add_bail() = std::move(out);
  }

  const v1::state::AssessmentRecord* latest = nullptr;
  for (const auto& a : v.assessments()) {
    if (latest == nullptr || a.at() >= latest->at()) latest = &a;
  }
  if (latest != nullptr) {
    auto* a = p.mutable_latest_assessment();
    a->set_event_id(latest->event_id());
    a->set_incident_id(latest->incident_id());
    a->set_tool(static_cast<v1::RiskAssessed::Tool>(latest->tool()));
    a->set_recorded_level(static_cast<v1::RiskAssessed::Level>(latest->recorded_level()));
    a->set_effective_level(static_cast<v1::RiskAssessed::Level>(latest->effective_level()));
    a->set_yes_count(latest->yes_count());
    *a->mutable_at() = ToTimestamp(latest->at());
  }
  bool violent_marker = false;
  for (const auto& m : v.markers()) {
    auto* out = p.add_markers();
    out->set_suspect_id(m.suspect_id());
    out->set_marker(static_cast<v1::MarkerMatched::Marker>(m.marker()));
    *out->mutable_matched_at() = ToTimestamp(m.at());
    if (m.marker() == v1::MarkerMatched::VIOLENCE || m.marker() == v1::MarkerMatched::WEAPONS) violent_marker = true;
  }
  for (const auto& d : v.deadlines()) {
    if (d.kind() != v1::state::Deadline::RULE) continue;
    auto* out = p.add_open_deadlines();
    out->set_rule(d.rule());
    out->set_incident_id(d.incident_id());
    out->set_awaiting(d.key());
    *out->mutable_due() = ToTimestamp(d.due());
  }
  bool serial = false;
  for (const auto& r : v.alerts()) {
    if (r.alert().state() == v1::RESOLVED) continue;
    *p.add_active_alerts() = r.alert();
    if (r.alert().rule() == RuleName(RuleId::kSerialPerpetrator)) serial = true;
  }

  RiskProfile::RiskLevel level = RiskProfile::RISK_STANDARD;
  auto raise = [&](RiskProfile::RiskLevel to, std::string why) {
    level = std::max(level, to);
    p.add_risk_reasons(std::move(why));
  };
  if (latest != nullptr && latest->effective_level() == v1::RiskAssessed::HIGH) {
    raise(RiskProfile::RISK_HIGH, "The latest risk assessment is HIGH.");
  } else if (latest != nullptr && latest->effective_level() == v1::RiskAssessed::MEDIUM) {
    raise(RiskProfile::RISK_MEDIUM, "The latest risk assessment is MEDIUM.");
  }
  if (violent_marker && !da_incidents.empty()) {
    raise(RiskProfile::RISK_HIGH, "A suspect in a domestic-abuse incident has a violence or weapons marker.");
  }
  if (escalation.count > 0 && da_incidents.size() >= escalation.count) {
    raise(RiskProfile::RISK_HIGH, absl::StrCat(da_incidents.size(), " domestic-abuse incidents within ",
                                               FormatDuration(escalation.window), "."));
  }
  if (serial) raise(RiskProfile::RISK_HIGH, "The suspect is linked to domestic abuse against other victims.");
  if (repeat.count > 0 && recent_calls >= repeat.count) {
    raise(RiskProfile::RISK_MEDIUM, absl::StrCat(recent_calls, " calls in the last 24h."));
  }
  if (p.active_alerts_size() > 0) {
    raise(RiskProfile::RISK_MEDIUM, absl::StrCat(p.active_alerts_size(), " alert(s) not yet resolved."));
  }
  if (p.risk_reasons_size() == 0) p.add_risk_reasons("Nothing recorded raises the risk above standard.");
  p.set_risk_level(level);
  return p;
}

}  // namespace vigil
