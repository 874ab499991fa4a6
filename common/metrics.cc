#include "common/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_serving.h"
#include "httplib.h"

namespace vigil {
namespace {

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // The shortest text that reads back as the same double (0.0005, not 0.00050000000000000001).
  return std::string(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
}

std::string Escape(absl::string_view s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quotes) out += "\\\"";
    else out += c;
  }
  return out;
}

// {a="x",b="y"}, with `extra` (le="...") last; empty when there are no labels.
std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", Escape(values[i], true), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? out : absl::StrCat("{", out, "}");
}

void RenderSeries(const std::string& name, const std::vector<std::string>& labels,
                  const std::vector<std::string>& values, const Counter& c, std::string* out) {
  absl::StrAppend(out, name, Labels(labels, values), " ", Number(c.value()), "\n");
}
void RenderSeries(const std::string& name, const std::vector<std::string>& labels,
                  const std::vector<std::string>& values, const Gauge& g, std::string* out) {
  absl::StrAppend(out, name, Labels(labels, values), " ", Number(g.value()), "\n");
}
void RenderSeries(const std::string& name, const std::vector<std::string>& labels,
                  const std::vector<std::string>& values, const Histogram& h, std::string* out) {
  const std::vector<uint64_t> counts = h.Cumulative();
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    absl::StrAppend(out, name, "_bucket", Labels(labels, values, absl::StrCat("le=\"", Number(h.bounds()[i]), "\"")),
                    " ", counts[i], "\n");
  }
  absl::StrAppend(out, name, "_bucket", Labels(labels, values, "le=\"+Inf\""), " ", counts.back(), "\n");
  absl::StrAppend(out, name, "_sum", Labels(labels, values), " ", Number(h.sum()), "\n");
  absl::StrAppend(out, name, "_count", Labels(labels, values), " ", counts.back(), "\n");
}

// A family without labels has its one series from the start: exposed at 0 before anything happens, so that
// a query (or an alert on its increase) sees it.
template <typename T>
Family<T>& Exposed(Family<T>& family) {
  if (family.labels().empty()) family.Get();
  return family;
}

template <typename T>
std::unique_ptr<T> NewSeries(const std::vector<double>&) {
  return std::make_unique<T>();
}
template <>
std::unique_ptr<Histogram> NewSeries<Histogram>(const std::vector<double>& bounds) {
  return std::make_unique<Histogram>(bounds);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();  // first bound >= v
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = total += buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> SecondsBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

template <typename T>
T& Family<T>::With(const std::vector<std::string>& values) {
  if (values.size() != labels_.size()) {
    std::fprintf(stderr, "metric %s: %zu label values for %zu labels\n", name_.c_str(), values.size(),
                 labels_.size());
    std::abort();  // a programming error
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<T>& s = series_[values];
  if (!s) s = NewSeries<T>(bounds_);
  return *s;
}

template <typename T>
void Family<T>::Remove(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  series_.erase(values);
}

template <typename T>
void Family<T>::Render(const char* type, std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", Escape(help_, false), "\n# TYPE ", name_, " ", type, "\n");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, series] : series_) RenderSeries(name_, labels_, values, *series, out);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <typename T>
Family<T>& MetricsRegistry::Add(const char* type, const std::string& name, const std::string& help,
                                std::vector<std::string> labels, std::vector<double> bounds) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*"), kLabel("[a-zA-Z_][a-zA-Z0-9_]*");
  std::lock_guard<std::mutex> lock(mu_);
  bool ok = std::regex_match(name, kName) && names_.insert(name).second;
  for (const auto& l : labels) ok = ok && std::regex_match(l, kLabel) && l != "le" && l.rfind("__", 0) != 0;
  if (!ok) {
    std::fprintf(stderr, "metric %s: an invalid or repeated name or label\n", name.c_str());
    std::abort();  // a programming error
  }
  std::shared_ptr<Family<T>> family(new Family<T>(name, help, std::move(labels), std::move(bounds)));
  families_.push_back(family);
  renderers_.push_back([f = family.get(), type](std::string* out) { f->Render(type, out); });
  return Exposed(*family);
}

Family<Counter>& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                             std::vector<std::string> labels) {
  return Add<Counter>("counter", name, help, std::move(labels), {});
}

Family<Gauge>& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                         std::vector<std::string> labels) {
  return Add<Gauge>("gauge", name, help, std::move(labels), {});
}

Family<Histogram>& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                                 std::vector<double> bounds, std::vector<std::string> labels) {
  return Add<Histogram>("histogram", name, help, std::move(labels), std::move(bounds));
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& render : renderers_) render(&out);
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsRegistry* registry,
                                                                    absl::string_view listen) {
  auto http = std::make_unique<httplib::Server>();
  http->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("vigild: metrics at /metrics\n", "text/plain");
  });
  auto serving = HttpServing::Start(std::move(http), listen, "--metrics-listen");
  if (!serving.ok()) return serving.status();
  return std::unique_ptr<MetricsServer>(new MetricsServer(*std::move(serving)));
}

MetricsServer::MetricsServer(std::unique_ptr<HttpServing> serving) : serving_(std::move(serving)) {}
MetricsServer::~MetricsServer() = default;
int MetricsServer::port() const { return serving_->port(); }

}  // namespace vigil
