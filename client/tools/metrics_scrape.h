// metrics_scrape.h: fetch a Prometheus /metrics page over plain HTTP and read samples from it.
// Used by hbsa-bench to report server-side counts and stage times before/after a run. Only what
// a scrape of hbsa-server needs: http:// URLs, HTTP/1.0, the text exposition format.
#ifndef HBSA_CLIENT_TOOLS_METRICS_SCRAPE_H_
#define HBSA_CLIENT_TOOLS_METRICS_SCRAPE_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hbsa::tools {

// GETs `url` ("http://host:port/path"); returns the body of a 200 answer. Bounded by `timeout`
// for connecting and for reading.
absl::StatusOr<std::string> HttpGet(const std::string& url, std::chrono::milliseconds timeout);

struct MetricSample {
  std::string name;                           // e.g. hbsa_requests_total
  std::map<std::string, std::string> labels;  // e.g. {method: Attend, code: OK}
  double value = 0;
};

// Parses the text exposition format; comment lines and malformed lines are skipped.
std::vector<MetricSample> ParsePrometheusText(const std::string& text);

// Sum of the samples named `name` whose labels include every pair of `match`.
double SumSamples(const std::vector<MetricSample>& samples, const std::string& name,
                  const std::map<std::string, std::string>& match = {});

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_METRICS_SCRAPE_H_
