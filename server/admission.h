// server/admission.h: the host-memory budget that every admitted request reserves from.
//
// Translation (translate.h) works out what a request will hold in host memory from its header
// fields alone (shapes, dtype, the mask form's sizes: RequestCost) before it copies or expands
// anything, and reserves that much here. The reservation lives in the TranslatedRequest, so it
// is held while the job waits in the queue and while it runs, and released when the job is
// finished or dropped (its destructor), whoever drops it. A request whose reservation does not
// fit is refused at once with RESOURCE_EXHAUSTED naming the budget, what is held and what it
// needs: 64 queued large requests can hold no more than the budget, and the refusal costs no
// allocation beyond the received message itself. Thread-safe.
#ifndef HBSA_SERVER_ADMISSION_H_
#define HBSA_SERVER_ADMISSION_H_

#include <cstdint>
#include <mutex>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hbsa::server {

class Metrics;
class AdmissionBudget;

// What one request will cost, known before its payload is copied or its mask expanded.
struct RequestCost {
  int64_t message_bytes = 0;  // the received message, held until the job is finished
  int64_t mask_bytes = 0;     // the converted mask (dense bytes or CSR); 0 for compact in place
  int64_t plan_bytes = 0;     // visit lists the backends compile (upper bound)
  int64_t staging_bytes = 0;  // q, k, v gathered into one buffer (when not usable in place)
  int64_t output_bytes = 0;   // out and lse
  int64_t working_bytes = 0;  // what one executor holds while it runs the request (its budget)
  int64_t host_bytes() const {
    return message_bytes + mask_bytes + plan_bytes + staging_bytes + output_bytes;
  }
};

// A held share of an AdmissionBudget; returns it when destroyed. Move-only; empty by default.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept { *this = std::move(other); }
  Reservation& operator=(Reservation&& other) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { Release(); }

  int64_t bytes() const { return bytes_; }
  void Release();

 private:
  friend class AdmissionBudget;
  Reservation(AdmissionBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
  AdmissionBudget* budget_ = nullptr;
  int64_t bytes_ = 0;
};

class AdmissionBudget {
 public:
  // `budget_bytes` > 0. `metrics` (may be null) gets hbsa_admission_reserved_bytes.
  AdmissionBudget(int64_t budget_bytes, Metrics* metrics);
  AdmissionBudget(const AdmissionBudget&) = delete;
  AdmissionBudget& operator=(const AdmissionBudget&) = delete;

  // Takes `bytes` or refuses with RESOURCE_EXHAUSTED naming `field`, the need, what admitted
  // requests hold and the budget (--admission-budget-bytes). Never waits.
  absl::StatusOr<Reservation> Reserve(int64_t bytes, absl::string_view field);

  int64_t budget_bytes() const { return budget_; }
  int64_t reserved_bytes() const;

 private:
  friend class Reservation;
  void Return(int64_t bytes);

  const int64_t budget_;
  Metrics* const metrics_;
  mutable std::mutex mu_;
  int64_t reserved_ = 0;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_ADMISSION_H_
