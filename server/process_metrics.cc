// server/process_metrics.cc: process_* families from /proc (see process_metrics.h).
#include "process_metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hbsa::server {
namespace {

std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Open descriptors of this process: entries of /proc/self/fd but the one reading it.
std::optional<int64_t> CountEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  int64_t n = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n - 1;  // the descriptor opendir itself holds
}

// The soft "Max open files" of a /proc/<pid>/limits text; nullopt when absent or "unlimited".
std::optional<int64_t> ParseMaxOpenFiles(absl::string_view limits) {
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t v = 0;
    if (!f.empty() && absl::SimpleAtoi(f[0], &v)) return v;
    return std::nullopt;
  }
  return std::nullopt;
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

std::optional<ProcStat> ParseProcStat(absl::string_view text) {
  const size_t close = text.rfind(')');
  if (close == absl::string_view::npos) return std::nullopt;
  // After the name: field 3 (state) onwards.
  std::vector<absl::string_view> f =
      absl::StrSplit(text.substr(close + 1), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  // Field n is f[n - 3].
  auto field = [&f](int n, auto* out) {
    return n - 3 < static_cast<int>(f.size()) && absl::SimpleAtoi(f[n - 3], out);
  };
  ProcStat s;
  if (!field(14, &s.utime_ticks) || !field(15, &s.stime_ticks) || !field(20, &s.num_threads) ||
      !field(22, &s.start_ticks) || !field(23, &s.vsize_bytes) || !field(24, &s.rss_pages)) {
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> ParseBootTime(absl::string_view proc_stat_text) {
  for (absl::string_view line : absl::StrSplit(proc_stat_text, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    int64_t v = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &v)) return v;
  }
  return std::nullopt;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::optional<std::string> stat_text = ReadText("/proc/self/stat");
  std::optional<ProcStat> st = stat_text ? ParseProcStat(*stat_text) : std::nullopt;
  if (st.has_value() && ticks > 0) {
    out.push_back(Family("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds", MetricType::Counter,
                         static_cast<double>(st->utime_ticks + st->stime_ticks) / ticks));
    out.push_back(Family("process_resident_memory_bytes", "Resident memory size in bytes",
                         MetricType::Gauge, static_cast<double>(st->rss_pages) * page));
    out.push_back(Family("process_virtual_memory_bytes", "Virtual memory size in bytes",
                         MetricType::Gauge, static_cast<double>(st->vsize_bytes)));
    out.push_back(Family("process_threads", "Threads of the process", MetricType::Gauge,
                         static_cast<double>(st->num_threads)));
    std::optional<std::string> sys = ReadText("/proc/stat");
    std::optional<int64_t> boot = sys ? ParseBootTime(*sys) : std::nullopt;
    if (boot.has_value()) {
      out.push_back(
          Family("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds", MetricType::Gauge,
                 static_cast<double>(*boot) + static_cast<double>(st->start_ticks) / ticks));
    }
  }
  if (std::optional<int64_t> fds = CountEntries("/proc/self/fd"); fds.has_value()) {
    out.push_back(Family("process_open_fds", "Number of open file descriptors", MetricType::Gauge,
                         static_cast<double>(*fds)));
  }
  std::optional<std::string> limits = ReadText("/proc/self/limits");
  if (std::optional<int64_t> max = limits ? ParseMaxOpenFiles(*limits) : std::nullopt;
      max.has_value()) {
    out.push_back(Family("process_max_fds", "Maximum number of open file descriptors",
                         MetricType::Gauge, static_cast<double>(*max)));
  }
  return out;
}

}  // namespace hbsa::server
