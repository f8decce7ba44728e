// server/process_metrics.h: the process_* families an operator expects of any server, read
// from /proc on every scrape (prometheus-cpp 1.0 has no process collector).
//
// Names and meaning follow the Prometheus client libraries' convention, so the usual dashboards
// and alerts work unchanged: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds,
// plus process_threads. A value that cannot be read on a scrape is left out of that scrape
// (never reported as 0). Linux only.
#ifndef HBSA_SERVER_PROCESS_METRICS_H_
#define HBSA_SERVER_PROCESS_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace hbsa::server {

// The fields of /proc/<pid>/stat that the collector reads (proc(5)).
struct ProcStat {
  uint64_t utime_ticks = 0;  // field 14: user CPU time, clock ticks
  uint64_t stime_ticks = 0;  // field 15: system CPU time, clock ticks
  int64_t num_threads = 0;   // field 20
  uint64_t start_ticks = 0;  // field 22: start time after boot, clock ticks
  uint64_t vsize_bytes = 0;  // field 23: virtual memory size, bytes
  int64_t rss_pages = 0;     // field 24: resident set size, pages
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// itself hold spaces and ')', so fields are counted from its last ')'. nullopt when malformed.
std::optional<ProcStat> ParseProcStat(absl::string_view text);

// The boot time (the "btime" line of /proc/stat), seconds since the epoch; nullopt if absent.
std::optional<int64_t> ParseBootTime(absl::string_view proc_stat_text);

class ProcessCollector final : public prometheus::Collectable {
 public:
  // Describes the calling process (/proc/self).
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_PROCESS_METRICS_H_
