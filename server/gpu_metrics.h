// server/gpu_metrics.h: GPU utilisation, memory, power and temperature from NVML, read on every
// scrape for the GPUs this server runs on.
//
// NVML is the driver's library (libnvidia-ml.so.1), present wherever a GPU is, but not on a
// build machine without a driver, and it is not part of the CUDA toolkit's runtime: the
// collector therefore loads it at run time (dlopen), and nothing in the build depends on it.
// Without it (no driver, a CPU-only host, the CPU backend) the families are absent, not zero.
// Families, each labelled device = the GPU ordinal as on the other per-device families:
//   hbsa_gpu_utilization_ratio          fraction of the last sample period a kernel ran (0..1)
//   hbsa_gpu_memory_used_bytes          device memory in use by every process
//   hbsa_gpu_memory_total_bytes         device memory installed
//   hbsa_gpu_power_watts                board power draw
//   hbsa_gpu_temperature_celsius        GPU core temperature
// A reading NVML refuses on a scrape (e.g. power on boards without a sensor) is left out.
#ifndef HBSA_SERVER_GPU_METRICS_H_
#define HBSA_SERVER_GPU_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hbsa::server {

// A GPU to watch: its metrics label and its PCI bus id ("0000:3b:00.0", from
// CudaPciBusId), which names the same GPU to NVML whatever CUDA_VISIBLE_DEVICES says.
struct WatchedGpu {
  std::string device;
  std::string pci_bus_id;
};

// The NVML entry points the collector uses, in NVML's C ABI (return 0 = NVML_SUCCESS). A table
// so that tests can stand in for the library.
struct NvmlApi {
  struct Utilization {    // nvmlUtilization_t
    unsigned int gpu;     // percent of time a kernel ran
    unsigned int memory;  // percent of time device memory was read or written
  };
  struct Memory {                          // nvmlMemory_t
    unsigned long long total, free, used;  // bytes
  };
  using Device = void*;                                                       // nvmlDevice_t
  int (*init)() = nullptr;                                                    // nvmlInit_v2
  int (*shutdown)() = nullptr;                                                // nvmlShutdown
  int (*handle_by_pci_bus_id)(const char* bus_id, Device* device) = nullptr;  // ..._v2
  int (*utilization)(Device device, Utilization* out) = nullptr;  // nvmlDeviceGetUtilizationRates
  int (*memory)(Device device, Memory* out) = nullptr;            // nvmlDeviceGetMemoryInfo
  int (*power_milliwatts)(Device device, unsigned int* out) = nullptr;  // nvmlDeviceGetPowerUsage
  // nvmlDeviceGetTemperature(device, NVML_TEMPERATURE_GPU = 0, out)
  int (*temperature)(Device device, int sensor, unsigned int* out) = nullptr;
};

// libnvidia-ml.so.1's entry points; UNAVAILABLE naming what is missing when it cannot be
// loaded. The library stays loaded for the life of the process.
absl::StatusOr<NvmlApi> LoadNvml();

class GpuCollector final : public prometheus::Collectable {
 public:
  // Initialises NVML and finds each GPU by its PCI bus id; UNAVAILABLE when NVML fails to
  // initialise or does not know a GPU.
  static absl::StatusOr<std::shared_ptr<GpuCollector>> Make(const NvmlApi& api,
                                                            std::vector<WatchedGpu> gpus);
  ~GpuCollector() override;
  GpuCollector(const GpuCollector&) = delete;
  GpuCollector& operator=(const GpuCollector&) = delete;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  GpuCollector(const NvmlApi& api, std::vector<WatchedGpu> gpus,
               std::vector<NvmlApi::Device> handles);
  const NvmlApi api_;
  const std::vector<WatchedGpu> gpus_;
  const std::vector<NvmlApi::Device> handles_;  // per gpus_ entry
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_GPU_METRICS_H_
