// tests/server/device_lost_test.cc: the device-lost path of hbsa-server without a GPU, driven by
// the test-only fault executor (--test-device-lost-after, server/fault_executor.h) on loopback.
// The server must recognise the loss by its typed signal (hbsa/device_status.h), not by words
// in a message: before that, a loss during warm-up exited 2 instead of the documented 3.
#include <string>

#include <gtest/gtest.h>

#include "server_harness.h"

namespace hbsa::testing {
namespace {

using std::chrono::seconds;

TEST(DeviceLost, DuringWarmUpExitsThree) {
  auto server = ServerProcess::Start({"--test-device-lost-after", "0"}, /*wait_serving=*/false);
  ASSERT_NE(server, nullptr);
  const std::optional<int> code = server->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << "the server did not exit\n" << server->Log();
  EXPECT_EQ(*code, 3) << server->Log();
  EXPECT_NE(server->Log().find("warm-up failed"), std::string::npos) << server->Log();
}

TEST(DeviceLost, WhileServingFailsTheCallUnavailableAndExitsThree) {
  auto server = ServerProcess::Start({"--test-device-lost-after", "1"});  // warm-up computes
  ASSERT_NE(server, nullptr);
  const golden::Case& c = GoldenCase("single_token_decode");
  v1::AttendRequest req = MakeRequest(c, MaskForm::kDense, true, "lost-1");
  v1::AttendResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
  const grpc::Status s = server->stub()->Attend(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("is unhealthy"), std::string::npos) << s.error_message();
  const std::optional<int> code = server->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << "the server did not exit\n" << server->Log();
  EXPECT_EQ(*code, 3) << server->Log();
  EXPECT_NE(server->Log().find("NOT_SERVING"), std::string::npos) << server->Log();
}

}  // namespace
}  // namespace hbsa::testing
