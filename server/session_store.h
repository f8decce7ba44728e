// server/session_store.h: sessions of server-resident K/V in paged memory.
//
// A session (proto/hbsa/v1/session.proto) holds the K/V rows of named sequences of one shape
// (dtype, Hk, D). Its rows live in fixed-size pages of the page pool of one device
// (page_pool.h); each sequence has a page table, and a page holds the K rows of page_tokens
// tokens followed by their V rows ([page_tokens, Hk, D] each, dtype elements). The store
// decides admission and eviction and says why a session is gone:
//
//   - Admission: an open with a capacity reserves its pages at once; an append (or the append
//     of an attend) takes the pages it needs from the session's reservation, else from the
//     pool. A request that cannot be served is refused RESOURCE_EXHAUSTED before anything is
//     taken, naming what it needs and the budget. All or nothing: a refused call changes nothing.
//   - Eviction: a session idle past its TTL is evicted at the next store call (any session's);
//     under LRU, when the pool lacks pages for a call, the least recently used other sessions
//     of that device are evicted until it has them (never when even all of them would not be
//     enough). Every call naming a session renews it.
//   - Gone sessions: NOT_FOUND whose message says why: closed, evicted (TTL or LRU), opened by
//     another server process (ids carry the process's random instance tag: a restarted server
//     knows the id is not its own), or unknown.
//
// Compute (this first step): AttendSession gathers the resident rows of the named sequences,
// page by page, into the packed [total_k, Hk, D] layout the attention kernels take (plus the
// rows the call appends) and runs the stateless path on it. That costs a copy of the whole
// resident K/V per call on the host (and, on the CUDA backend, its upload), so it removes the
// network transfer but not the per-call K/V traffic; a kernel reading pages in place (and a
// device-resident pool) is the next step.
//
// Thread-safe: one mutex guards everything, including the gather (which copies the rows out,
// so a later eviction or close never touches what a running call reads).
#ifndef HBSA_SERVER_SESSION_STORE_H_
#define HBSA_SERVER_SESSION_STORE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/attention.h"
#include "hbsa/v1/session.pb.h"
#include "page_pool.h"

namespace hbsa::server {

class Metrics;

struct SessionStoreOptions {
  std::vector<int> devices = {-1};  // one pool per entry: GPU ordinal, or -1 (CPU)
  int64_t memory_bytes_per_device = int64_t{1} << 30;  // each pool's slab
  int64_t page_bytes = 65536;        // one page: K and V rows of page_tokens tokens
  double default_ttl_seconds = 600;  // OpenSession without ttl_seconds
  double max_ttl_seconds = 86400;    // larger asks are clamped to this
  bool evict_lru = true;             // evict least recently used when a pool is full
  int max_sessions = 4096;           // open at once, all devices
  // The clock (tests substitute their own); steady_clock::now when empty.
  std::function<std::chrono::steady_clock::time_point()> now;
};

// Why a session is gone (for NOT_FOUND messages and hbsa_session_evictions_total).
enum class GoneReason { kClosed, kEvictedTtl, kEvictedLru };

struct OpenedSession {
  std::string id;
  int device = -1;
  int32_t page_tokens = 0;
  int64_t page_bytes = 0;
  double ttl_seconds = 0;
  int64_t reserved_tokens = 0;
};

// What AttendSession's prepare step sees: the session's shape and the resident lengths of the
// named sequences after the call's append; Gather writes their K and V, packed in that order
// ([sum of lengths, Hk, D] each, the session's dtype), into k_dst and v_dst.
struct ResidentView {
  DType dtype = DType::kFloat32;
  int32_t num_heads_k = 0;
  int32_t head_dim = 0;
  int device = -1;
  std::vector<int64_t> lengths;
  std::function<void(char* k_dst, char* v_dst)> gather;
};

class SessionStore {
 public:
  // `metrics` may be null (tests); it outlives the store.
  SessionStore(SessionStoreOptions options, Metrics* metrics);
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  absl::StatusOr<OpenedSession> Open(const v1::OpenSessionRequest& request);

  // Appends `rows` (checked against the session: field names start with `field`, e.g. "rows");
  // returns the resident lengths of rows.sequence_ids after it.
  absl::StatusOr<std::vector<int64_t>> Append(const std::string& id, const v1::SessionRows& rows,
                                              const char* field = "rows");

  // AttendSession's store part: checks `append` (may be empty) and the named sequences (which
  // must exist after the append), computes their lengths, and calls `prepare` with the view.
  // When prepare returns OK (it validated the call and gathered the K/V it needs) the append
  // is admitted (pages) and committed; otherwise nothing changes. Returns the lengths.
  absl::StatusOr<std::vector<int64_t>> Attend(
      const std::string& id, const std::vector<std::string>& sequence_ids,
      const v1::SessionRows& append,
      const std::function<absl::Status(const ResidentView& view)>& prepare);

  // Frees the session's pages now; returns the bytes freed.
  absl::StatusOr<int64_t> Close(const std::string& id);

  // Evicts sessions idle past their TTL (every call does this first; the metrics refresher
  // calls it too, so idle memory is returned without traffic).
  void EvictExpired();

  // For tests and metrics.
  int64_t open_sessions() const;
  int64_t free_pages(int device_index) const;
  int64_t total_pages(int device_index) const;
  const std::string& instance() const { return instance_; }

 private:
  struct Sequence {
    int64_t length = 0;          // resident rows
    std::vector<int32_t> pages;  // the page table: page i holds rows i*pt .. (i+1)*pt-1
  };
  struct Session {
    std::string id;
    int pool = 0;  // index into pools_
    DType dtype = DType::kFloat32;
    int32_t num_heads_k = 0, head_dim = 0;
    int64_t row_bytes = 0;  // one token's K (or V): Hk * D * dtype size
    int32_t page_tokens = 0;
    double ttl_seconds = 0;
    std::chrono::steady_clock::time_point last_used;
    bool reserved = false;         // opened with a capacity: pages come only from `reserve`
    std::vector<int32_t> reserve;  // reserved pages not yet in a page table
    int64_t tokens = 0;            // resident rows, all sequences
    std::map<std::string, Sequence> sequences;
  };
  // A checked SessionRows: row ranges per sequence id.
  struct CheckedRows {
    const v1::SessionRows* rows = nullptr;
    std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end) per sequence_ids entry
  };

  std::chrono::steady_clock::time_point Now() const;
  absl::StatusOr<Session*> FindLocked(const std::string& id);
  absl::StatusOr<CheckedRows> CheckRows(const Session& s, const v1::SessionRows& rows,
                                        const char* field) const;
  // Pages the rows need beyond what their sequences' tables hold.
  int64_t PagesNeeded(const Session& s, const CheckedRows& rows) const;
  // Makes `pages` available to `s` (its reservation, or the pool after LRU eviction if
  // allowed), or RESOURCE_EXHAUSTED naming the need and the budget; `what` names the call.
  absl::Status AdmitLocked(Session* s, int64_t pages, const char* what);
  void CommitRowsLocked(Session* s, const CheckedRows& rows);
  void EvictExpiredLocked(std::chrono::steady_clock::time_point now);
  // `id` by value: callers pass keys and members of the session it erases.
  void RemoveLocked(std::string id, GoneReason reason);
  void PublishLocked();

  const SessionStoreOptions options_;
  Metrics* const metrics_;
  const std::string instance_;  // random tag in every id this process hands out
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<PagePool>> pools_;
  std::map<std::string, Session> sessions_;
  std::map<std::string, GoneReason> gone_;  // recently gone ids, at most kMaxGone
  std::deque<std::string> gone_order_;
  uint64_t next_ = 1;
};

// The metric label of a GoneReason ("closed", "ttl", "lru").
const char* GoneReasonName(GoneReason reason);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SESSION_STORE_H_
