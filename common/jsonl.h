// Protobuf messages as JSON lines: the standard proto3 JSON mapping, one
// message a line, field names as in the .proto files (snake_case).
// Thread-safe: pure functions.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace vigil {

// Parses one JSON object into `message` (cleared first). Unknown fields are an
// error. INVALID_ARGUMENT saying what is wrong otherwise.
absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* message);

// One line of JSON, no trailing newline; fields at their default are left out.
std::string ToJsonLine(const google::protobuf::Message& message);

// A record's value in either encoding Vigil writes to a topic (vigild --alerts-format): JSON when it starts
// with '{' (binary protobuf never does: that byte would open a proto2 group), binary protobuf otherwise.
// Fields a newer writer added are kept (binary) or skipped (JSON). INVALID_ARGUMENT when it is neither.
absl::Status ParseProtobufOrJson(absl::string_view bytes, google::protobuf::Message* message);

}  // namespace vigil
