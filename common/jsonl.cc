#include "common/jsonl.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace vigil {

namespace {

absl::Status JsonToMessage(absl::string_view json, google::protobuf::Message* message, bool ignore_unknown_fields) {
  message->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown_fields;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a valid ", message->GetTypeName(), " in JSON: ",
                                                   std::string(status.message())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* message) {
  return JsonToMessage(line, message, /*ignore_unknown_fields=*/false);
}

absl::Status ParseProtobufOrJson(absl::string_view bytes, google::protobuf::Message* message) {
  if (!bytes.empty() && bytes.front() == '{') return JsonToMessage(bytes, message, /*ignore_unknown_fields=*/true);
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat("not a ", message->GetTypeName(), " (protobuf or JSON)"));
  }
  return absl::OkStatus();
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = false;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace vigil
