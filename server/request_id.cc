// server/request_id.cc: request_id limits and log escaping (see request_id.h).
#include "request_id.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace hbsa::server {

absl::Status CheckRequestId(absl::string_view id) {
  if (static_cast<int64_t>(id.size()) > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id must be at most ",
                                                   kMaxRequestIdBytes, " bytes; got ", id.size()));
  }
  return absl::OkStatus();
}

std::string EchoedRequestId(absl::string_view id) {
  return static_cast<int64_t>(id.size()) > kMaxRequestIdBytes ? std::string() : std::string(id);
}

std::string LogSafeRequestId(absl::string_view id) {
  if (static_cast<int64_t>(id.size()) <= kMaxRequestIdBytes) return absl::CHexEscape(id);
  return absl::StrCat(absl::CHexEscape(id.substr(0, kMaxRequestIdBytes)), "...(", id.size(),
                      " bytes)");
}

}  // namespace hbsa::server
