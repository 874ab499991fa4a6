#include "common/metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace vigil {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CountersAndGaugesRenderInTheTextFormatWithEscapedLabels) {
  MetricsRegistry r;
  Family<Counter>& dead = r.AddCounter("vigil_dead_letters_total", "Dead letters.", {"reason"});
  Family<Gauge>& lag = r.AddGauge("vigil_consumer_lag", "Lag.", {"partition"});
  dead.With({"INVALID_ARGUMENT"}).Inc();
  dead.With({"INVALID_ARGUMENT"}).Inc(2);
  dead.With({"a \"quoted\"\\ line\nbreak"}).Inc();
  lag.With({"3"}).Set(1234567);
  lag.With({"4"}).Set(0.25);
  EXPECT_EQ(r.Render(),
            "# HELP vigil_dead_letters_total Dead letters.\n"
            "# TYPE vigil_dead_letters_total counter\n"
            "vigil_dead_letters_total{reason=\"INVALID_ARGUMENT\"} 3\n"
            "vigil_dead_letters_total{reason=\"a \\\"quoted\\\"\\\\ line\\nbreak\"} 1\n"
            "# HELP vigil_consumer_lag Lag.\n"
            "# TYPE vigil_consumer_lag gauge\n"
            "vigil_consumer_lag{partition=\"3\"} 1234567\n"
            "vigil_consumer_lag{partition=\"4\"} 0.25\n");
}

TEST(MetricsTest, AHistogramsBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry r;
  Family<Histogram>& h = r.AddHistogram("vigil_commit_seconds", "Commits.", {0.005, 0.05});
  h.Get().Observe(0.001);
  h.Get().Observe(0.005);  // on a bound: in that bucket (le)
  h.Get().Observe(0.01);
  h.Get().Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP vigil_commit_seconds Commits.\n"
            "# TYPE vigil_commit_seconds histogram\n"
            "vigil_commit_seconds_bucket{le=\"0.005\"} 2\n"
            "vigil_commit_seconds_bucket{le=\"0.05\"} 3\n"
            "vigil_commit_seconds_bucket{le=\"+Inf\"} 4\n"
            "vigil_commit_seconds_sum 7.016\n"
            "vigil_commit_seconds_count 4\n");
}

TEST(MetricsTest, ARemovedSeriesIsNoLongerExposed) {
  MetricsRegistry r;
  Family<Gauge>& lag = r.AddGauge("vigil_consumer_lag", "Lag.", {"partition"});
  lag.With({"1"}).Set(5);
  lag.With({"2"}).Set(6);
  lag.Remove({"1"});
  EXPECT_THAT(r.Render(), Not(HasSubstr("partition=\"1\"")));
  EXPECT_THAT(r.Render(), HasSubstr("vigil_consumer_lag{partition=\"2\"} 6\n"));
}

TEST(MetricsTest, AnInvalidNameIsAProgrammingError) {
  MetricsRegistry r;
  EXPECT_DEATH(r.AddCounter("vigil-events", "A dash."), "invalid");
  r.AddCounter("vigil_events_total", "Once.");
  EXPECT_DEATH(r.AddGauge("vigil_events_total", "Twice."), "repeated");
  EXPECT_DEATH(r.AddGauge("vigil_x", "A reserved label.", {"le"}), "invalid");
}

TEST(MetricsServerTest, ServesTheRegistryOverHttp) {
  MetricsRegistry r;
  r.AddCounter("vigil_events_applied_total", "Applied.").Get().Inc(42);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(&r, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("version=0.0.4"));
  EXPECT_THAT(res->body, HasSubstr("vigil_events_applied_total 42\n"));
  EXPECT_EQ(client.Get("/nothing")->status, 404);
}

TEST(MetricsServerTest, ABadAddressIsRefusedWithTheFlagsName) {
  MetricsRegistry r;
  EXPECT_EQ(MetricsServer::Start(&r, "no-port").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start(&r, "127.0.0.1:99999").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Start(&r, "127.0.0.1:0");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(MetricsServer::Start(&r, absl::StrCat("127.0.0.1:", (*first)->port())).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace vigil
