#include "services/escalation/vigild/metrics.h"

#include "absl/status/status.h"

namespace vigil {

VigilMetrics::VigilMetrics(MetricsRegistry* r)
    : events_applied(r->AddCounter("vigil_events_applied_total", "Events applied to victims' state.")),
      dead_letters(r->AddCounter("vigil_dead_letters_total",
                                 "Records sent to the dead-letter topic, by the status code they were refused with.",
                                 {"reason"})),
      events_too_late(r->AddCounter("vigil_events_too_late_total",
                                    "Events older than stream time minus the horizon: kept on the timeline, "
                                    "evaluated by no rule.")),
      alert_transitions(r->AddCounter("vigil_alert_transitions_total", "Alert transitions published.",
                                      {"rule", "level", "state"})),
      consumer_lag(r->AddGauge("vigil_consumer_lag",
                               "Records of an owned events partition on the broker and not yet applied.",
                               {"partition"})),
      restore_remaining(r->AddGauge("vigil_restore_remaining_records",
                                    "Records an assigned partition replays before it is current (0 once it is).",
                                    {"partition"})),
      commit_seconds(r->AddHistogram("vigil_commit_seconds", "Time to commit one Kafka transaction.",
                                     SecondsBuckets())),
      store_write_seconds(r->AddHistogram("vigil_store_write_seconds",
                                          "Time to write one batch to RocksDB (every partition's atomic write).",
                                          SecondsBuckets())),
      ready(r->AddGauge("vigil_ready", "1 when vigild is ready (broker reachable, store writable), else 0.")),
      owned_partitions(r->AddGauge("vigil_owned_partitions", "Events partitions this instance owns.")),
      held_victims(r->AddGauge("vigil_held_victims",
                               "Victims of an owned events partition whose state is held in memory.", {"partition"})),
      victims_awaiting_deadline(r->AddGauge("vigil_victims_awaiting_deadline",
                                            "Victims with a deadline pending, held or not (one not held is loaded when it falls due).",
                                            {"partition"})),
      api_requests(r->AddCounter("vigil_api_requests_total", "gRPC requests finished, by method and status code.",
                                 {"method", "code"})),
      api_request_seconds(r->AddHistogram("vigil_api_request_seconds", "gRPC request time, by method.",
                                          SecondsBuckets(), {"method"})),
      audit_failures(r->AddCounter("vigil_audit_failures_total",
                                   "Reads refused because their audit record could not be written.")) {
  // Every reason a record can be refused for, at 0 from the start: a series first seen at 1 shows no increase
  // (Prometheus's increase() needs a sample before the first dead letter), and an alert on it would never fire.
  for (int code = 1; code <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++code) {
    dead_letters.With({absl::StatusCodeToString(static_cast<absl::StatusCode>(code))});
  }
}

VigilMetrics* VigilMetrics::Unexposed() {
  static MetricsRegistry* registry = new MetricsRegistry();
  static VigilMetrics* metrics = new VigilMetrics(registry);
  return metrics;
}

}  // namespace vigil
