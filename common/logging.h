// Logs: one JSON object a line on standard error, built by a JSON library
// (nlohmann::json), for vigild and for the libraries it runs: librdkafka's
// lines and gRPC's come through the same sink, each named by its logger.
//
//   {"ts":"2026-12-06T12:00:00.123Z","level":"info","logger":"vigild","msg":"event=started ..."}
//
// No personal data goes into a message: log lines name partitions, counts and
// statuses, never a victim, suspect or officer id.
//
// Thread-safe (spdlog's multi-threaded sink).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace vigil {

// One log line, without its newline: the JSON object above. Invalid UTF-8 in `msg` is replaced, never
// dropped or passed through.
std::string JsonLogLine(absl::string_view ts, absl::string_view level, absl::string_view logger,
                        absl::string_view msg);

// spdlog's formatter for JsonLogLine.
std::unique_ptr<spdlog::formatter> NewJsonLogFormatter();

// Makes the default logger ("vigild"), and the "librdkafka" and "grpc" loggers, write JSON lines to
// `sink` (standard error when null) at `level` (trace, debug, info, warn, error); routes gRPC's own logging
// there. INVALID_ARGUMENT for an unknown level.
absl::Status InitJsonLogging(absl::string_view level, spdlog::sink_ptr sink = nullptr);

}  // namespace vigil
