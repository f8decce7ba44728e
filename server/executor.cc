// server/executor.cc: helpers shared by the executors (see executor.h).
#include "executor.h"

namespace hbsa::server {

void PrepareOutputs(v1::AttendResponse* response, TranslatedRequest* request) {
  AttentionArgs& a = request->args;
  v1::Tensor* out = response->mutable_out();
  out->set_dtype(ToProtoDType(a.dtype));
  out->clear_shape();
  out->add_shape(a.total_q);
  out->add_shape(a.num_heads_q);
  out->add_shape(a.head_dim);
  std::string* data = out->mutable_data();
  data->resize(static_cast<size_t>(request->out_bytes));
  a.out = {data->data(), data->size()};
  a.lse = {};
  if (request->return_lse) {
    v1::Tensor* lse = response->mutable_lse();
    lse->set_dtype(v1::DTYPE_FLOAT32);
    lse->clear_shape();
    lse->add_shape(a.total_q);
    lse->add_shape(a.num_heads_q);
    std::string* lse_data = lse->mutable_data();
    lse_data->resize(static_cast<size_t>(request->lse_bytes));
    a.lse = {lse_data->data(), lse_data->size()};
  }
}

}  // namespace hbsa::server
