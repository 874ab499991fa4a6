// vigild: Vigil's streaming service. Only wiring lives here: flags, logging,
// signals, and the Service that does the work.
#include <malloc.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <csignal>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "services/escalation/api/api_server.h"
#include "services/escalation/api/peers.h"
#include "services/escalation/api/risk_service.h"
#include "services/escalation/console/console_server.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/signer.h"
#include "services/escalation/engine/rules_config.h"
#include "services/escalation/vigild/service.h"
#include "spdlog/spdlog.h"

namespace {
vigil::Service* g_service = nullptr;

// vigild cannot start, or go on: why, as a JSON log line on standard error (logging.h), and its exit status.
int Fail(int code, absl::string_view why) {
  spdlog::critical("event=exit code={} status={}", code, std::string(why));
  return code;
}

void OnSignal(int) {
  if (g_service) g_service->Stop();
}

// glibc's malloc, held to what vigild uses (docs/performance.md, "vigild's memory"): two arenas, not eight a
// core (each thread that allocates gets one, and what one frees the others cannot reuse). MALLOC_ARENA_MAX in
// the environment wins. (Mapping allocations of 1 MiB or more on their own gave a burst's memory back too, but
// cost the storm a sixth of vigild's CPU an event: not set.)
void BoundMalloc() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
}
}  // namespace

int main(int argc, char** argv) {
  BoundMalloc();
  CLI::App app{"vigild: consumes incident events from Kafka, keeps each victim's state in RocksDB, and "
               "publishes escalation alerts to Kafka exactly once"};
  app.set_config("--config", "", "Read options from this file (TOML or INI: brokers = \"...\")");
  vigil::ServiceOptions o;
  std::string brokers = "127.0.0.1:9092", rules, log_level = "info";
  std::vector<std::string> kafka_props;
  app.add_option("--brokers", brokers, "Kafka bootstrap servers")->envname("VIGIL_BROKERS")->capture_default_str();
  app.add_option("--group", o.group, "Consumer group")->envname("VIGIL_GROUP")->capture_default_str();
  app.add_option("--instance", o.instance, "This instance's id (its Kafka transactional.id); unique per instance")
      ->envname("VIGIL_INSTANCE")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "RocksDB directory")->envname("VIGIL_DATA_DIR")->capture_default_str();
  app.add_option("--rules", rules, "Rules file (YAML); default: built-in defaults")->envname("VIGIL_RULES");
  app.add_option("--events-topic", o.topics.events, "")->envname("VIGIL_EVENTS_TOPIC")->capture_default_str();
  app.add_option("--alerts-topic", o.topics.alerts, "")->envname("VIGIL_ALERTS_TOPIC")->capture_default_str();
  app.add_option("--dlq-topic", o.topics.dead_letters, "Dead letters")->envname("VIGIL_DLQ_TOPIC")->capture_default_str();
  app.add_option("--progress-topic", o.topics.progress, "Outbox progress (compacted)")->capture_default_str();
  app.add_option("--suspect-links-topic", o.topics.suspect_links,
                 "Topic for one suspect view across all partitions (e.g. vigil.suspect-links); "
                 "default: a view per partition, in process")
      ->envname("VIGIL_SUSPECT_LINKS_TOPIC")->capture_default_str();
  std::string alerts_format = "protobuf";
  app.add_option("--alerts-format", alerts_format,
                 "How alerts are written to the alert topics: protobuf (vigil.v1.Alert) or json (its proto3 JSON "
                 "mapping, for consumers without Vigil's .proto files)")
      ->envname("VIGIL_ALERTS_FORMAT")->check(CLI::IsMember({"protobuf", "json"}))->capture_default_str();
  app.add_option("--source-alerts-topic", o.topics.source_alerts,
                 "Operational alerts (vigil.v1.SourceAlert): a source system gone quiet, and back")
      ->envname("VIGIL_SOURCE_ALERTS_TOPIC")->capture_default_str();
  std::string source_quiet_after = "1h";
  app.add_option("--source-quiet-after", source_quiet_after,
                 "A source that has sent nothing to a partition for this long, by its clock ticks, is reported "
                 "quiet; 0 turns it off")
      ->envname("VIGIL_SOURCE_QUIET_AFTER")->capture_default_str();
  app.add_option("--route", o.topics.routes, "More alert topics: LEVEL=topic or force:NAME=topic (repeatable)");
  app.add_option("--partitions", o.partitions, "Partitions of topics vigild creates")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--tick-ms", o.tick_ms, "Clock tick interval; 0 turns ticks off")
      ->capture_default_str()->check(CLI::Range(0, 3600000));
  app.add_option("--batch-max", o.batch_max,
                 "Records per batch at most, when every owned partition has a backlog (with fewer, a share for each "
                 "that has one)")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  size_t batch_max_mb = o.batch_max_bytes >> 20;
  app.add_option("--batch-max-mb", batch_max_mb,
                 "What a batch may hold for its commit, at most, in MiB (its RocksDB writes and outbox): a batch "
                 "of large records, or of records raising many alerts, is cut short there and the rest waits for "
                 "the next; a partition's read-ahead pauses at 4 x its share")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--partition-batch-max", o.partition_batch_max,
                 "Records of one partition per batch at most: a backlog in one partition (one victim's flood) "
                 "takes turns with the others; beyond twice this read ahead, its fetching pauses")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--batch-ms", o.batch_ms,
                 "How long a batch waits for records before it is applied and stored (its outbox then goes to the "
                 "committer)")
      ->capture_default_str()->check(CLI::Range(0, 60000));
  app.add_option("--apply-threads", o.apply_threads,
                 "Partitions applied and stored at once, each by one thread (the loop's and helpers)")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--commit-interval-ms", o.commit_interval_ms,
                 "A Kafka transaction at most this often: what was stored meanwhile is published in it, while the "
                 "next batches are applied")
      ->envname("VIGIL_COMMIT_INTERVAL_MS")->capture_default_str()->check(CLI::Range(0, 60000));
  app.add_option("--kafka", kafka_props, "librdkafka property KEY=VALUE, passed through (repeatable): "
                                         "security.protocol, ssl.*, sasl.*, ...")
      ->envname("VIGIL_KAFKA");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error: JSON lines on standard error")
      ->envname("VIGIL_LOG_LEVEL")->capture_default_str();
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464); default: none")
      ->envname("VIGIL_METRICS_LISTEN");
  std::vector<int32_t> drop;
  app.add_option("--drop-partition", drop, "Delete one partition's stored state (events and suspect links), then "
                                           "exit (no Kafka); the next run rebuilds it from the log (repeatable)");
  vigil::ApiServerOptions api;
  vigil::ApiOptions api_options;
  std::string access_file, insecure_identity;
  app.add_option("--grpc-listen", api.listen, "Serve the gRPC API here (host:port, e.g. 127.0.0.1:7443); default: no API")
      ->envname("VIGIL_GRPC_LISTEN");
  app.add_option("--tls-cert", api.tls_cert, "API: the server's certificate (PEM)")->envname("VIGIL_TLS_CERT");
  app.add_option("--tls-key", api.tls_key, "API: the server's private key (PEM)")->envname("VIGIL_TLS_KEY");
  app.add_option("--tls-client-ca", api.tls_client_ca,
                 "API: the CA that signs client certificates (PEM); a client's identity is its certificate's CN")
      ->envname("VIGIL_TLS_CLIENT_CA");
  app.add_option("--access", access_file, "API: who may call what (YAML, see deploy/config/access.yaml)")
      ->envname("VIGIL_ACCESS");
  app.add_option("--insecure-dev-identity", insecure_identity,
                 "API without TLS, every caller taken to be this client of the access file: local development only")
      ->envname("VIGIL_INSECURE_DEV_IDENTITY");
  vigil::PeerOptions peer_options;
  std::string peer_cert, peer_key, peer_ca;
  app.add_option("--instances-topic", peer_options.topic,
                 "API: where instances say which partitions they own and where their API is (compacted), so that "
                 "any instance forwards a call for a victim to the one that owns its partition")
      ->envname("VIGIL_INSTANCES_TOPIC")->capture_default_str();
  app.add_option("--advertise-address", peer_options.api_address,
                 "API: host:port other instances reach this one's API on; default: the --grpc-listen address "
                 "(this host's name for a wildcard host)")
      ->envname("VIGIL_ADVERTISE_ADDRESS");
  app.add_option("--peer-tls-cert", peer_cert,
                 "API: the client certificate (PEM) this instance forwards calls to others with; its CN needs "
                 "the Forward right in every instance's access file. Without it (and TLS on), calls are not "
                 "forwarded")
      ->envname("VIGIL_PEER_TLS_CERT");
  app.add_option("--peer-tls-key", peer_key, "API: its private key (PEM)")->envname("VIGIL_PEER_TLS_KEY");
  app.add_option("--peer-tls-ca", peer_ca, "API: the CA that signs other instances' server certificates (PEM); "
                                           "default: --tls-client-ca")
      ->envname("VIGIL_PEER_TLS_CA");
  vigil::ConsoleOptions console_options;
  app.add_option("--console-listen", console_options.listen,
                 "Serve the supervisors' console (a web page; docs/console.md) on HOST:PORT: HTTPS with client "
                 "certificates, with the API's --tls-cert, --tls-key and --tls-client-ca (plaintext with "
                 "--insecure-dev-identity). It calls the API in each user's name, with --peer-tls-cert; default: none")
      ->envname("VIGIL_CONSOLE_LISTEN");
  app.add_option("--audit-topic", api_options.audit_topic, "Audit records of reads of victims' data")
      ->envname("VIGIL_AUDIT_TOPIC")->capture_default_str();
  app.add_option("--watch-max-streams", api_options.max_watch_streams,
                 "API: WatchAlerts streams open at once at most; more are refused (RESOURCE_EXHAUSTED)")
      ->envname("VIGIL_WATCH_MAX_STREAMS")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--api-max-pending-audits", api_options.max_pending_audits,
                 "API: reads awaiting Kafka's acknowledgement of their audit record, at most; more are refused "
                 "(RESOURCE_EXHAUSTED)")
      ->envname("VIGIL_API_MAX_PENDING_AUDITS")->capture_default_str()->check(CLI::Range(1, 1000000));
  vigil::AlertFeedOptions feed_options;
  size_t watch_buffer_mb = feed_options.ring_bytes >> 20;
  app.add_option("--watch-buffer-mb", watch_buffer_mb,
                 "API: alert transitions held in memory for every watcher to share (one consumer feeds them all); "
                 "a watcher further behind reads on with a consumer of its own")
      ->envname("VIGIL_WATCH_BUFFER_MB")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--watch-max-catching-up", feed_options.max_catching_up,
                 "API: watchers reading history older than that buffer at once (each has its own consumer)")
      ->envname("VIGIL_WATCH_MAX_CATCHING_UP")->capture_default_str()->check(CLI::Range(1, 1000));
  uint64_t min_free_mb = 128;
  size_t block_cache_mb = vigil::Store::kDefaultBlockCacheBytes >> 20;
  app.add_option("--block-cache-mb", block_cache_mb,
                 "RocksDB's cache of stored blocks read recently (filled as they are read): API reads it serves "
                 "cost no file read")
      ->envname("VIGIL_BLOCK_CACHE_MB")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--min-free-disk-mb", min_free_mb,
                 "Stop consuming (not ready) while the data directory's disk has less free than this")
      ->envname("VIGIL_MIN_FREE_DISK_MB")->capture_default_str();
  app.add_option("--max-held-victims", o.max_held_victims,
                 "Victims held in memory per partition after a commit; the others are read back from the store on "
                 "their next event, or when their earliest pending deadline falls due")
      ->envname("VIGIL_MAX_HELD_VICTIMS")->capture_default_str()->check(CLI::Range(size_t{1}, size_t{100000000}));
  bool digest = false;
  app.add_flag("--digest", digest, "Print each stored partition's progress and state digest, then exit (no Kafka)");
  std::string signing_key_file, future_tolerance = "5m";
  app.add_option("--signing-key-file", signing_key_file,
                 "The key (32 bytes or more) that signs what only vigild writes (acknowledgements, clock ticks, "
                 "findings); every instance of the group, and a rebuild, must use the same one. Default: "
                 "DATA_DIR/signing.key, made on first start")
      ->envname("VIGIL_SIGNING_KEY_FILE");
  app.add_option("--max-event-bytes", o.admission.max_event_bytes,
                 "Largest event accepted, on the topic and through the API; larger ones are refused")
      ->envname("VIGIL_MAX_EVENT_BYTES")->capture_default_str()->check(CLI::Range(256, 1 << 20));
  app.add_option("--future-tolerance", future_tolerance,
                 "An event whose occurred_at is later than its Kafka record's timestamp plus this is refused")
      ->envname("VIGIL_FUTURE_TOLERANCE")->capture_default_str();
  (void)vigil::InitJsonLogging("info");  // until --log-level is read
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help: text, on standard output
    return Fail(2, e.what());                          // bad configuration: 2, as for the checks below
  }

  if (absl::Status s = vigil::InitJsonLogging(log_level); !s.ok()) {
    return Fail(2, s.message());
  }

  o.batch_max_bytes = batch_max_mb << 20;
  o.topics.alerts_format =
      alerts_format == "json" ? vigil::Topics::AlertFormat::kJson : vigil::Topics::AlertFormat::kProtobuf;
  o.kafka.emplace_back("bootstrap.servers", brokers);
  for (const auto& kv : kafka_props) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) {
      return Fail(2, absl::StrCat("--kafka wants KEY=VALUE, got '", kv, "'"));
    }
    o.kafka.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  absl::StatusOr<vigil::RulesConfig> config =
      rules.empty() ? vigil::RulesConfig::Defaults() : vigil::LoadRulesFile(rules);
  if (!config.ok()) {
    return Fail(2, config.status().message());
  }
  const vigil::Engine engine(*std::move(config));
  if (source_quiet_after == "0") {
    o.topics.source_quiet_after = 0;
  } else if (absl::StatusOr<vigil::Micros> q = vigil::ParseDuration(source_quiet_after);
             !q.ok() || *q < 10 * vigil::kMicrosPerSecond || *q > 30 * vigil::kMicrosPerDay) {
    return Fail(2, absl::StrCat("--source-quiet-after: ", q.ok() ? "from 10s to 30d, or 0" : q.status().message()));
  } else {
    o.topics.source_quiet_after = *q;
  }
  if (absl::StatusOr<vigil::Micros> t = vigil::ParseDuration(future_tolerance); !t.ok() || *t > vigil::kMicrosPerDay) {
    return Fail(2, absl::StrCat("--future-tolerance: ", t.ok() ? "at most 1d" : t.status().message()));
  } else {
    o.admission.future_tolerance = *t;
  }
  if (!drop.empty()) {
    auto store = vigil::Store::Open(o.data_dir);
    if (!store.ok()) {
      return Fail(3, store.status().message());
    }
    for (int32_t p : drop) {
      for (auto kind : {vigil::PartitionKind::kEvents, vigil::PartitionKind::kSuspectLinks}) {
        if (absl::Status s = (*store)->DeletePrefix(vigil::PartitionPrefix(p, kind)); !s.ok()) {
          return Fail(1, s.message());
        }
      }
      std::cout << "dropped partition " << p << " (events and suspect links); it is rebuilt from the log on the "
                   "next start\n";
    }
    return 0;
  }
  if (digest) {
    auto store = vigil::Store::Open(o.data_dir);
    if (!store.ok()) {
      return Fail(3, store.status().message());
    }
    for (auto kind : {vigil::PartitionKind::kEvents, vigil::PartitionKind::kSuspectLinks}) {
      auto partitions = vigil::StoredPartitions(**store, kind);
      if (!partitions.ok()) {
        return Fail(3, partitions.status().message());
      }
      for (int32_t p : *partitions) {
        auto pipeline = vigil::PartitionPipeline::Load(store->get(), &engine, &o.topics, &o.admission, p, kind);
        if (!pipeline.ok()) {
          return Fail(3, pipeline.status().message());
        }
        auto state_digest = (*pipeline)->StateDigest();
        if (!state_digest.ok()) {
          return Fail(3, state_digest.status().message());
        }
        std::cout << (kind == vigil::PartitionKind::kEvents ? "events" : "suspect-links") << " partition " << p
                  << " next_offset " << (*pipeline)->next_offset() << " outbox_seq " << (*pipeline)->outbox_seq()
                  << " digest " << *state_digest << "\n";
      }
    }
    return 0;
  }
  if (signing_key_file.empty()) {
    // A key of the instance's own, made once: fine for one instance. A group of several shares one key
    // (--signing-key-file), and a rebuild from the log needs the key that signed it.
    signing_key_file = (std::filesystem::path(o.data_dir) / "signing.key").string();
    if (absl::Status made = vigil::CreateSigningKeyIfAbsent(signing_key_file); !made.ok()) {
      return Fail(2, made.message());
    }
  }
  absl::StatusOr<vigil::Signer> signer = vigil::Signer::FromFile(signing_key_file);
  if (!signer.ok()) {
    return Fail(2, absl::StrCat("--signing-key-file: ", signer.status().message()));
  }
  o.admission.signer = &*signer;
  auto store = vigil::Store::Open(o.data_dir, block_cache_mb << 20);
  if (!store.ok()) {
    return Fail(3, store.status().message());
  }
  // The broker's and the store's state, as the service finds them: the API's health service says it.
  vigil::MetricsRegistry registry;
  vigil::VigilMetrics metrics(&registry);
  o.metrics = &metrics;
  api.metrics = &metrics;
  api_options.metrics = &metrics;
  std::unique_ptr<vigil::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = vigil::MetricsServer::Start(&registry, metrics_listen);
    if (!started.ok()) {
      return Fail(2, started.status().message());
    }
    metrics_server = *std::move(started);
    spdlog::info("event=metrics_serving port={} path=/metrics", metrics_server->port());
  }
  vigil::Health health;
  health.Listen([&metrics](bool ready, const absl::Status& why) {
    metrics.ready.Get().Set(ready ? 1 : 0);
    if (ready) spdlog::info("event=ready");
    else spdlog::warn("event=not_ready status=\"{}\"", why.ToString());
  });
  metrics.ready.Get().Set(health.Ready() ? 1 : 0);
  // The API, when asked for: reads from the store, writes through Kafka.
  std::optional<vigil::AccessPolicy> access;
  std::unique_ptr<vigil::Log> log;
  std::unique_ptr<vigil::AlertFeed> feed;
  std::unique_ptr<vigil::StateReader> reader;
  std::unique_ptr<vigil::RiskServiceImpl> risk_service;
  vigil::Watermarks applied;  // the loop's applied offsets, for the API's read-your-writes
  o.applied = &applied;
  vigil::Ownership ownership;  // the loop's partitions: the API answers only from these
  o.ownership = &ownership;
  std::unique_ptr<vigil::Peers> peers;
  vigil::ApiServer server;
  std::unique_ptr<vigil::ConsoleServer> console;
  if (!console_options.listen.empty() && api.listen.empty()) {
    return Fail(2, "--console-listen needs the API (--grpc-listen): the console calls it in each user's name");
  }
  if (!console_options.listen.empty() && insecure_identity.empty() && peer_cert.empty()) {
    return Fail(2, "--console-listen with TLS needs --peer-tls-cert: the console calls the API with it, naming "
                   "the user (its CN needs the Forward right in the access file)");
  }
  if (!api.listen.empty()) {
    if (access_file.empty()) {
      return Fail(2, "--access is required to serve the API (see deploy/config/access.yaml)");
    }
    auto policy = vigil::AccessPolicy::Load(access_file);
    if (!policy.ok()) {
      return Fail(2, policy.status().message());
    }
    access = *std::move(policy);
    api.insecure = !insecure_identity.empty();
    api_options.insecure_identity = insecure_identity;
    api_options.events_topic = o.topics.events;
    api_options.health = &health;
    api_options.applied = &applied;
    api_options.signer = &*signer;
    api_options.max_event_bytes = o.admission.max_event_bytes;
    api_options.future_tolerance = o.admission.future_tolerance;
    // Checked before anything is buffered: a request over the size of one event (and its envelope) is refused
    // by gRPC itself (RESOURCE_EXHAUSTED).
    api.max_message_bytes = static_cast<int>(o.admission.max_event_bytes) + 4096;
    // A broker that is away now is not a reason to refuse reads: the API starts, and writes wait for it.
    if (absl::Status topics = vigil::EnsureTopics(
            o.kafka,
            {{o.topics.events, o.partitions, {}},
             {api_options.audit_topic, 1, {}},
             {peer_options.topic, 1, {{"cleanup.policy", "compact"}}}},
            30000);
        !topics.ok()) {
      spdlog::warn("event=api_topics_not_checked status=\"{}\"", topics.ToString());
    }
    // Where a victim is: the events topic's partition count (as created, if the broker does not say now).
    absl::StatusOr<int> partition_count = vigil::PartitionCount(o.kafka, o.topics.events, 10000);
    api_options.partitions = partition_count.ok() ? *partition_count : o.partitions;
    auto kafka_log = vigil::NewKafkaLog(o.kafka, {o.topics.events, api_options.audit_topic, peer_options.topic});
    if (!kafka_log.ok()) {
      return Fail(1, kafka_log.status().message());
    }
    log = *std::move(kafka_log);
    feed_options.ring_bytes = watch_buffer_mb << 20;
    feed = vigil::NewKafkaAlertFeed(o.kafka, o.topics.alerts, feed_options);
    reader = std::make_unique<vigil::StateReader>(store->get(), &ownership);
    api_options.ownership = &ownership;
    risk_service = std::make_unique<vigil::RiskServiceImpl>(reader.get(), log.get(), feed.get(), &*access,
                                                            &engine.rules(), api_options);
    api.more_services = {risk_service->peer_service()};
    auto started = vigil::StartApiServer(api, risk_service.get(), &health);
    if (!started.ok()) {
      return Fail(2, started.status().message());
    }
    server = *std::move(started);
    spdlog::info("event=api_serving port={} tls={}", server.port, api.insecure ? "off (development only)" : "mutual");
    // The other instances: found on the instances topic; calls for their victims forwarded to them.
    if (api.insecure || !peer_cert.empty()) {
      auto credentials = vigil::PeerCredentials(api.insecure, peer_cert, peer_key,
                                                peer_ca.empty() ? api.tls_client_ca : peer_ca);
      if (!credentials.ok()) return Fail(2, credentials.status().message());
      peer_options.credentials = *credentials;
      peer_options.instance = o.instance;
      peer_options.events_topic = o.topics.events;
      if (peer_options.api_address.empty()) peer_options.api_address = vigil::AdvertisedAddress(api.listen, server.port);
      if (!console_options.listen.empty()) {
        // The console: a page on its own port, calling this instance's API where other instances do.
        console_options.tls_cert = api.tls_cert;
        console_options.tls_key = api.tls_key;
        console_options.tls_client_ca = api.tls_client_ca;
        console_options.insecure_identity = insecure_identity;
        for (int r = 0; r < vigil::kRuleCount; ++r) {
          console_options.rules.emplace_back(vigil::RuleName(static_cast<vigil::RuleId>(r)));
        }
        auto started_console = vigil::ConsoleServer::Start(
            console_options, grpc::CreateChannel(peer_options.api_address, *credentials));
        if (!started_console.ok()) return Fail(2, started_console.status().message());
        console = *std::move(started_console);
        spdlog::info("event=console_serving port={} tls={}", console->port(),
                     api.insecure ? "off (development only)" : "mutual");
      }
      auto started_peers = vigil::Peers::Start(o.kafka, peer_options, log.get());
      if (!started_peers.ok()) return Fail(1, started_peers.status().message());
      peers = *std::move(started_peers);
      ownership.Listen([p = peers.get()](const std::set<int32_t>& owned) { p->Announce(owned); });
      risk_service->set_peers(peers.get());
      spdlog::info("event=peers_on topic={}", peer_options.topic);
    } else {
      spdlog::warn("event=peers_off reason=\"no --peer-tls-cert: calls for victims other instances own are "
                   "answered UNAVAILABLE\"");
    }
  }
  (*store)->set_min_free_bytes(min_free_mb << 20);
  vigil::Service service(std::move(o), &engine, store->get(), &health);
  g_service = &service;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  absl::Status status = service.Run();
  console.reset();
  if (server.server) server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (!status.ok()) {
    return Fail(status.code() == absl::StatusCode::kDataLoss ? 3 : 1, status.message());
  }
  return 0;
}
