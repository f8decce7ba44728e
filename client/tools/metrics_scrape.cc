// metrics_scrape.cc: see metrics_scrape.h. POSIX sockets, one request per connection.
#include "metrics_scrape.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace hbsa::tools {
namespace {

// Closes the socket when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

bool WaitFor(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const std::string& url, std::chrono::milliseconds timeout) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics URL must start with http://; got ", url));
  }
  std::string rest = url.substr(prefix.size());
  std::string hostport = rest.substr(0, rest.find('/'));
  std::string path = rest.find('/') == std::string::npos ? "/" : rest.substr(rest.find('/'));
  std::string host = hostport, port = "80";
  if (auto c = hostport.rfind(':'); c != std::string::npos) {
    host = hostport.substr(0, c);
    port = hostport.substr(c + 1);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat(url, ": cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  Fd sock;
  bool connected = false;
  for (addrinfo* ai = res; ai != nullptr && !connected; ai = ai->ai_next) {
    sock.fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
    if (sock.fd < 0) continue;
    if (connect(sock.fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && WaitFor(sock.fd, POLLOUT, timeout))) {
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      connected = err == 0;
    }
    if (!connected) { close(sock.fd); sock.fd = -1; }
  }
  freeaddrinfo(res);
  if (!connected) return absl::UnavailableError(absl::StrCat(url, ": cannot connect"));
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", hostport,
                                       "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < req.size()) {
    if (!WaitFor(sock.fd, POLLOUT, timeout)) return absl::DeadlineExceededError(absl::StrCat(url, ": send timed out"));
    ssize_t n = send(sock.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(absl::StrCat(url, ": send failed"));
    sent += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[65536];
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (std::chrono::steady_clock::now() > give_up || !WaitFor(sock.fd, POLLIN, timeout)) {
      return absl::DeadlineExceededError(absl::StrCat(url, ": read timed out"));
    }
    ssize_t n = recv(sock.fd, buf, sizeof(buf), 0);
    if (n < 0) return absl::UnavailableError(absl::StrCat(url, ": read failed"));
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  const auto header_end = resp.find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::InternalError(absl::StrCat(url, ": no HTTP header"));
  const std::string status_line = resp.substr(0, resp.find("\r\n"));
  if (status_line.find(" 200") == std::string::npos) {
    return absl::InternalError(absl::StrCat(url, ": ", status_line));
  }
  return resp.substr(header_end + 4);
}

std::vector<MetricSample> ParsePrometheusText(const std::string& text) {
  std::vector<MetricSample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    MetricSample s;
    size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) continue;
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      const size_t close = line.find('}', i);
      if (close == std::string::npos) continue;
      // label="value" pairs; values in hbsa's metrics hold no escaped quotes or commas.
      size_t p = i + 1;
      while (p < close) {
        const size_t eq = line.find('=', p);
        if (eq == std::string::npos || eq > close) break;
        const size_t q1 = line.find('"', eq), q2 = line.find('"', q1 + 1);
        if (q1 == std::string::npos || q2 == std::string::npos) break;
        s.labels[line.substr(p, eq - p)] = line.substr(q1 + 1, q2 - q1 - 1);
        p = q2 + 1;
        if (p < close && line[p] == ',') ++p;
      }
      i = close + 1;
    }
    const size_t vstart = line.find_first_not_of(' ', i);
    if (vstart == std::string::npos) continue;
    const std::string v = line.substr(vstart, line.find(' ', vstart) - vstart);
    if (v == "+Inf") {
      s.value = HUGE_VAL;
    } else if (!absl::SimpleAtod(v, &s.value)) {
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

double SumSamples(const std::vector<MetricSample>& samples, const std::string& name,
                  const std::map<std::string, std::string>& match) {
  double sum = 0;
  for (const MetricSample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (ok) sum += s.value;
  }
  return sum;
}

}  // namespace hbsa::tools
