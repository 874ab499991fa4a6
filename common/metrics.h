// Prometheus metrics: counters, gauges and histograms, each a family of series
// by label values, written in Prometheus's text exposition format (version
// 0.0.4) and served over HTTP at /metrics.
//
// Names follow Prometheus's conventions (base units, `_total` for counters);
// the registry checks the syntax of names and labels, not the meaning. Label
// values must come from a small, bounded set (a status code, a rule, a
// partition): never an identifier of a person.
//
// Thread-safe: series are updated with atomics from any thread; families and
// the registry take a lock to add a series or to render.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vigil {

class HttpServing;

class Counter {
 public:
  void Inc(double by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound, then +Inf (= count()).
  std::vector<uint64_t> Cumulative() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bound, then +Inf; not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Buckets for durations in seconds, 0.5 ms to 10 s.
std::vector<double> SecondsBuckets();

// One metric: its series by label values (as many values as label names, in order). A metric without
// labels is exposed (at 0) from its registration.
template <typename T>
class Family {
 public:
  // The series with these label values, made at first use. REQUIRES: one value per label name.
  T& With(const std::vector<std::string>& values);
  // The series without labels. REQUIRES: a family without label names.
  T& Get() { return With({}); }
  // Forgets a series (a partition no longer owned), so that it is no longer exposed.
  void Remove(const std::vector<std::string>& values);
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), bounds_(std::move(bounds)) {}
  void Render(const char* type, std::string* out) const;

  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> series_;
};

class MetricsRegistry {
 public:
  // A new family. The returned reference lives as long as the registry.
  // REQUIRES: a valid name ([a-zA-Z_:][a-zA-Z0-9_:]*) not registered before, valid label names.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                                  std::vector<std::string> labels = {});

  // Every family, in the text exposition format.
  std::string Render() const;

 private:
  // A new family of `type` ("counter", ...), after checking its name and labels.
  template <typename T>
  Family<T>& Add(const char* type, const std::string& name, const std::string& help,
                 std::vector<std::string> labels, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::set<std::string> names_;
  std::vector<std::shared_ptr<void>> families_;  // owned, each a Family<T>
  std::vector<std::function<void(std::string*)>> renderers_;  // one per family, in registration order
};

// Serves the registry at http://HOST:PORT/metrics on threads of its own (cpp-httplib) until destroyed.
class MetricsServer {
 public:
  // `listen`: HOST:PORT (port 0: any free one). INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it
  // cannot be bound. REQUIRES: the registry outlives the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const MetricsRegistry* registry,
                                                              absl::string_view listen);
  ~MetricsServer();
  int port() const;

 private:
  explicit MetricsServer(std::unique_ptr<HttpServing> serving);
  std::unique_ptr<HttpServing> serving_;
};

}  // namespace vigil
