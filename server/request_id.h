// server/request_id.h: the rules for AttendRequest.request_id, the one caller-chosen string the
// server echoes and logs.
//
// The id is untrusted: it is length-limited at the validation boundary (translate.cc), never
// echoed when over the limit, and escaped before it reaches a log line, so a newline cannot
// forge a log entry and a huge id cannot flood the log or push a response past the message
// limit.
#ifndef HBSA_SERVER_REQUEST_ID_H_
#define HBSA_SERVER_REQUEST_ID_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hbsa::server {

// Longest request_id accepted, in bytes (a UUID is 36, a W3C trace id 32).
inline constexpr int64_t kMaxRequestIdBytes = 256;

// OK, or INVALID_ARGUMENT naming request_id and the limit.
absl::Status CheckRequestId(absl::string_view id);

// The id to echo in a response: `id` when within the limit, else "" (the request was refused
// for it, and echoing it would make the error response as large as the id).
std::string EchoedRequestId(absl::string_view id);

// `id` for a log line: C-escaped (quotes, backslashes, control and non-ASCII bytes as escapes,
// so the result is one printable line) and cut to kMaxRequestIdBytes input bytes, with
// "...(N bytes)" appended when cut.
std::string LogSafeRequestId(absl::string_view id);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_REQUEST_ID_H_
