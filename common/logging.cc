#include "common/logging.h"

#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "grpc/support/log.h"
#include "nlohmann/json.hpp"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace vigil {
namespace {

std::string Utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line = JsonLogLine(Utc(msg.time), absl::string_view(level.data(), level.size()),
                                         absl::string_view(msg.logger_name.data(), msg.logger_name.size()),
                                         absl::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

void GrpcLog(gpr_log_func_args* args) {
  std::shared_ptr<spdlog::logger> logger = spdlog::get("grpc");
  if (!logger) return;
  const spdlog::level::level_enum level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
                                          : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                                                    : spdlog::level::debug;
  logger->log(level, "{} ({}:{})", args->message ? args->message : "", args->file ? args->file : "", args->line);
}

}  // namespace

std::string JsonLogLine(absl::string_view ts, absl::string_view level, absl::string_view logger,
                        absl::string_view msg) {
  nlohmann::ordered_json j;
  j["ts"] = std::string(ts);
  j["level"] = std::string(level);
  j["logger"] = std::string(logger);
  j["msg"] = std::string(msg);
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

std::unique_ptr<spdlog::formatter> NewJsonLogFormatter() { return std::make_unique<JsonFormatter>(); }

absl::Status InitJsonLogging(absl::string_view level_name, spdlog::sink_ptr sink) {
  const spdlog::level::level_enum level = spdlog::level::from_str(std::string(level_name));
  if (level == spdlog::level::off && level_name != "off") {
    return absl::InvalidArgumentError(absl::StrCat("--log-level: unknown level '", level_name, "'"));
  }
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(NewJsonLogFormatter());
  for (const char* name : {"librdkafka", "grpc"}) spdlog::drop(name);
  auto main = std::make_shared<spdlog::logger>("vigild", sink);
  auto kafka = std::make_shared<spdlog::logger>("librdkafka", sink);
  auto grpc = std::make_shared<spdlog::logger>("grpc", sink);
  for (auto* l : {&main, &kafka, &grpc}) {
    (*l)->set_level(level);
    (*l)->flush_on(spdlog::level::warn);
  }
  spdlog::register_logger(kafka);
  spdlog::register_logger(grpc);
  spdlog::set_default_logger(main);
  // gRPC logs what it has to say at its own verbosity (GRPC_VERBOSITY), through spdlog from here on.
  gpr_set_log_function(GrpcLog);
  gpr_log_verbosity_init();  // GRPC_VERBOSITY, ERROR by default (before it, gRPC prints nothing at all)
  return absl::OkStatus();
}

}  // namespace vigil
