// server/admission.cc: the admitted-work memory budget (see admission.h).
#include "admission.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "metrics.h"

namespace hbsa::server {

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void Reservation::Release() {
  if (budget_ != nullptr) budget_->Return(bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

AdmissionBudget::AdmissionBudget(int64_t budget_bytes, Metrics* metrics)
    : budget_(budget_bytes), metrics_(metrics) {
  if (metrics_ != nullptr) metrics_->SetAdmission(0, budget_);
}

absl::StatusOr<Reservation> AdmissionBudget::Reserve(int64_t bytes, absl::string_view field) {
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes > budget_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, ": the request needs ", bytes,
                     " bytes of host memory, past the whole admission "
                     "budget (",
                     budget_, " bytes, --admission-budget-bytes)"));
  }
  if (bytes > budget_ - reserved_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        field, ": the request needs ", bytes, " bytes of host memory; admitted requests hold ",
        reserved_, " of the admission budget (", budget_,
        " bytes, --admission-budget-bytes); retry later"));
  }
  reserved_ += bytes;
  if (metrics_ != nullptr) metrics_->SetAdmission(reserved_, budget_);
  return Reservation(this, bytes);
}

int64_t AdmissionBudget::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}

void AdmissionBudget::Return(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_ -= bytes;
  if (metrics_ != nullptr) metrics_->SetAdmission(reserved_, budget_);
}

}  // namespace hbsa::server
