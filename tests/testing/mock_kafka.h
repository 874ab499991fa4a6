// librdkafka's mock cluster: a fake Kafka broker in process that speaks the protocol (produce, fetch, groups,
// transactions), for tests of what talks to Kafka. It does not hide aborted transactions from read_committed
// consumers. A real broker is the integration tests'.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>
#include <utility>
#include <vector>

#include "common/kafka.h"
#include "gtest/gtest.h"

namespace vigil::testing {

class MockKafka {
 public:
  // One broker, with these topics (name, partitions).
  explicit MockKafka(const std::vector<std::pair<std::string, int>>& topics) {
    char err[256];
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    EXPECT_NE(host_, nullptr) << err;
    cluster_ = rd_kafka_mock_cluster_new(host_, 1);
    EXPECT_NE(cluster_, nullptr);
    for (const auto& [name, partitions] : topics) rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
    props_ = {{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster_)}};
  }
  ~MockKafka() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  // bootstrap.servers for clients of the mock.
  const KafkaProps& props() const { return props_; }
  // For rd_kafka_mock_* calls: errors to inject, brokers to take down.
  rd_kafka_mock_cluster_t* cluster() { return cluster_; }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  KafkaProps props_;
};

}  // namespace vigil::testing
