#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/jsonl.h"
#include "common/time_util.h"
#include "services/vigilctl/commands.h"

namespace vigil::ctl {

std::string FormatAlert(const v1::Alert& a) {
  std::string who = absl::StrCat("victim ", a.victim_id());
  if (!a.incident_id().empty()) absl::StrAppend(&who, ", incident ", a.incident_id());
  return absl::StrFormat("%s  %-12s %-14s %-26s %s  %s  [rule: %s; evidence: %s; alert %s]",
                         FormatRfc3339(ToMicros(a.at())), v1::AlertState_Name(a.state()),
                         v1::Level_Name(a.level()), a.rule(), who, a.reason(), a.threshold(),
                         absl::StrJoin(a.evidence_event_ids(), ", "), a.alert_id());
}

int Show(std::istream& in, std::ostream& out, std::ostream& err) {
  std::string line;
  v1::Alert alert;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (absl::Status s = ParseJsonLine(line, &alert); !s.ok()) {
      err << "vigilctl show: line " << number << ": " << s.message() << "\n";
      return kExitBadInput;
    }
    out << FormatAlert(alert) << "\n";
  }
  return kExitOk;
}

}  // namespace vigil::ctl
