// server/serving_state.h: whether the server is live and ready, as the Open Inference Protocol
// front end (oip_service.h) answers ServerLive, ServerReady and ModelReady.
//
// main.cc sets it at the same moments as grpc.health.v1 (SetHealth): not ready from start until
// warm-up passed, ready while serving, not ready again from the moment a drain starts; not live
// (and not ready) once a GPU became unusable, just before the process exits for a restart.
// Lock-free: read on gRPC threads, written by main.
#ifndef HBSA_SERVER_SERVING_STATE_H_
#define HBSA_SERVER_SERVING_STATE_H_

#include <atomic>

namespace hbsa::server {

class ServingState {
 public:
  void SetReady(bool ready) { ready_.store(ready); }
  void SetDeviceLost() {
    live_.store(false);
    ready_.store(false);
  }
  bool live() const { return live_.load(); }
  bool ready() const { return ready_.load(); }

 private:
  std::atomic<bool> live_{true};
  std::atomic<bool> ready_{false};
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SERVING_STATE_H_
