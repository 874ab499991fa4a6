// vigild's metrics, by name: what an operator scrapes at --metrics-listen
// (/metrics), dashboards (deploy/grafana/) and alerts on
// (deploy/prometheus/vigild-alerts.yml). docs/operations.md lists them.
//
// Labels take values from small, bounded sets (partitions, rules, levels,
// states, status codes, gRPC methods): no victim, suspect or officer id.
//
// Thread-safe, as the registry's series are.
#pragma once

#include <string>

#include "common/metrics.h"

namespace vigil {

struct VigilMetrics {
  explicit VigilMetrics(MetricsRegistry* registry);

  // The streaming loop.
  Family<Counter>& events_applied;            // events applied to state (dead letters not counted)
  Family<Counter>& dead_letters;              // {reason}: the status code the record was refused with
  Family<Counter>& events_too_late;           // older than stream time minus the horizon: evaluated by no rule
  Family<Counter>& alert_transitions;         // {rule, level, state}
  Family<Gauge>& consumer_lag;                // {partition}: records on the broker not yet applied
  Family<Gauge>& restore_remaining;           // {partition}: records to replay before an assigned partition is current
  Family<Histogram>& commit_seconds;          // one Kafka transaction's commit
  Family<Histogram>& store_write_seconds;     // one batch's atomic RocksDB write, every partition
  Family<Gauge>& ready;                       // 1 ready, 0 not (gRPC health says why)
  Family<Gauge>& owned_partitions;
  Family<Gauge>& held_victims;                // {partition}: victims whose state is in memory
  Family<Gauge>& victims_awaiting_deadline;   // {partition}: victims with a deadline pending, held or not
  // The API.
  Family<Counter>& api_requests;              // {method, code}
  Family<Histogram>& api_request_seconds;     // {method}
  Family<Counter>& audit_failures;            // reads refused because their audit record was not written

  // A registry nobody serves: for callers that do not expose metrics (tests, tools).
  static VigilMetrics* Unexposed();
};

}  // namespace vigil
