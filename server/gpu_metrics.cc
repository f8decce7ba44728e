// server/gpu_metrics.cc: the NVML collector (see gpu_metrics.h).
#include "gpu_metrics.h"

#include <dlfcn.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace hbsa::server {
namespace {

constexpr int kNvmlSuccess = 0;
constexpr int kNvmlTemperatureGpu = 0;

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, std::string* missing) {
  *out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*out == nullptr) absl::StrAppend(missing, missing->empty() ? "" : ", ", name);
  return *out != nullptr;
}

prometheus::MetricFamily Gauges(const char* name, const char* help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddSample(prometheus::MetricFamily* f, const std::string& device, double value) {
  prometheus::ClientMetric m;
  m.label.push_back({"device", device});
  m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

}  // namespace

absl::StatusOr<NvmlApi> LoadNvml() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(
        absl::StrCat("cannot load libnvidia-ml.so.1 (the NVIDIA driver's NVML): ",
                     why != nullptr ? why : "unknown error"));
  }
  NvmlApi api;
  std::string missing;
  Bind(lib, "nvmlInit_v2", &api.init, &missing);
  Bind(lib, "nvmlShutdown", &api.shutdown, &missing);
  Bind(lib, "nvmlDeviceGetHandleByPciBusId_v2", &api.handle_by_pci_bus_id, &missing);
  Bind(lib, "nvmlDeviceGetUtilizationRates", &api.utilization, &missing);
  Bind(lib, "nvmlDeviceGetMemoryInfo", &api.memory, &missing);
  Bind(lib, "nvmlDeviceGetPowerUsage", &api.power_milliwatts, &missing);
  Bind(lib, "nvmlDeviceGetTemperature", &api.temperature, &missing);
  if (!missing.empty()) {
    dlclose(lib);
    return absl::UnavailableError(absl::StrCat("libnvidia-ml.so.1 lacks ", missing));
  }
  return api;  // `lib` stays open: the function pointers point into it
}

absl::StatusOr<std::shared_ptr<GpuCollector>> GpuCollector::Make(const NvmlApi& api,
                                                                 std::vector<WatchedGpu> gpus) {
  if (const int rc = api.init(); rc != kNvmlSuccess) {
    return absl::UnavailableError(absl::StrCat("nvmlInit_v2 failed (NVML error ", rc, ")"));
  }
  std::vector<NvmlApi::Device> handles;
  for (const WatchedGpu& g : gpus) {
    NvmlApi::Device d = nullptr;
    if (const int rc = api.handle_by_pci_bus_id(g.pci_bus_id.c_str(), &d); rc != kNvmlSuccess) {
      api.shutdown();
      return absl::UnavailableError(absl::StrCat("NVML does not know GPU ", g.device,
                                                 " (PCI bus id \"", g.pci_bus_id,
                                                 "\"): NVML error ", rc));
    }
    handles.push_back(d);
  }
  return std::shared_ptr<GpuCollector>(new GpuCollector(api, std::move(gpus), std::move(handles)));
}

GpuCollector::GpuCollector(const NvmlApi& api, std::vector<WatchedGpu> gpus,
                           std::vector<NvmlApi::Device> handles)
    : api_(api), gpus_(std::move(gpus)), handles_(std::move(handles)) {}

GpuCollector::~GpuCollector() { api_.shutdown(); }

std::vector<prometheus::MetricFamily> GpuCollector::Collect() const {
  prometheus::MetricFamily util = Gauges(
      "hbsa_gpu_utilization_ratio",
      "Fraction of NVML's last sample period (1/6 s to 1 s) during which a kernel ran on the GPU");
  prometheus::MetricFamily used = Gauges(
      "hbsa_gpu_memory_used_bytes", "Device memory in use on the GPU, by every process (NVML)");
  prometheus::MetricFamily total =
      Gauges("hbsa_gpu_memory_total_bytes", "Device memory installed on the GPU");
  prometheus::MetricFamily power = Gauges("hbsa_gpu_power_watts", "Board power draw of the GPU");
  prometheus::MetricFamily temp = Gauges("hbsa_gpu_temperature_celsius", "GPU core temperature");
  for (size_t i = 0; i < gpus_.size(); ++i) {
    const std::string& label = gpus_[i].device;
    NvmlApi::Utilization u{};
    if (api_.utilization(handles_[i], &u) == kNvmlSuccess) AddSample(&util, label, u.gpu / 100.0);
    NvmlApi::Memory m{};
    if (api_.memory(handles_[i], &m) == kNvmlSuccess) {
      AddSample(&used, label, static_cast<double>(m.used));
      AddSample(&total, label, static_cast<double>(m.total));
    }
    unsigned int mw = 0;
    if (api_.power_milliwatts(handles_[i], &mw) == kNvmlSuccess)
      AddSample(&power, label, mw / 1000.0);
    unsigned int celsius = 0;
    if (api_.temperature(handles_[i], kNvmlTemperatureGpu, &celsius) == kNvmlSuccess) {
      AddSample(&temp, label, celsius);
    }
  }
  std::vector<prometheus::MetricFamily> out;
  for (prometheus::MetricFamily* f : {&util, &used, &total, &power, &temp}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace hbsa::server
