// server/session_store.cc: sessions, page tables, admission and eviction (see the header).
#include "session_store.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "metrics.h"
#include "translate.h"

namespace hbsa::server {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

constexpr size_t kMaxGone = 65536;  // gone ids remembered for their NOT_FOUND message
constexpr size_t kMaxSequenceIdBytes = 128;
constexpr size_t kMaxSessionIdBytes = 64;

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

std::string RandomInstance() {
  std::random_device rd;
  const uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrFormat("%016x", x);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string DeviceName(int device) {
  return device < 0 ? std::string("cpu") : absl::StrCat("GPU ", device);
}

// Ids travel into error messages and log lines: printable ASCII only (no forged log lines),
// 1 to `max` bytes. Refused without echoing the value.
absl::Status CheckId(const std::string& field, const std::string& id, size_t max) {
  if (id.empty() || id.size() > max) {
    return Invalid(absl::StrCat(field, " must be 1 to ", max, " bytes; got ", id.size()));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x21 || c > 0x7e) {
      return Invalid(absl::StrCat(field, " must be printable ASCII without spaces; byte ", i,
                                  " is 0x", absl::Hex(c, absl::kZeroPad2)));
    }
  }
  return absl::OkStatus();
}

std::string ShapeText(const v1::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.shape(), ", "), "]");
}

}  // namespace

const char* GoneReasonName(GoneReason reason) {
  switch (reason) {
    case GoneReason::kClosed:
      return "closed";
    case GoneReason::kEvictedTtl:
      return "ttl";
    case GoneReason::kEvictedLru:
      return "lru";
  }
  return "unknown";
}

SessionStore::SessionStore(SessionStoreOptions options, Metrics* metrics)
    : options_(std::move(options)), metrics_(metrics), instance_(RandomInstance()) {
  for (size_t i = 0; i < options_.devices.size(); ++i) {
    pools_.push_back(
        std::make_unique<PagePool>(options_.memory_bytes_per_device, options_.page_bytes));
  }
  std::lock_guard<std::mutex> lock(mu_);
  PublishLocked();
}

TimePoint SessionStore::Now() const {
  return options_.now ? options_.now() : std::chrono::steady_clock::now();
}

absl::StatusOr<OpenedSession> SessionStore::Open(const v1::OpenSessionRequest& r) {
  absl::StatusOr<DType> dtype = FromProtoDType(r.dtype(), "dtype");
  if (!dtype.ok()) return dtype.status();
  if (r.num_heads_k() < 1 || r.num_heads_k() > kMaxHeads) {
    return Invalid(
        absl::StrCat("num_heads_k must be in [1, ", kMaxHeads, "]; got ", r.num_heads_k()));
  }
  if (r.head_dim() < 1 || r.head_dim() > kMaxHeadDim) {
    return Invalid(absl::StrCat("head_dim must be in [1, ", kMaxHeadDim, "]; got ", r.head_dim()));
  }
  if (r.capacity_tokens() < 0) {
    return Invalid(absl::StrCat("capacity_tokens must be >= 0 (0 = no reservation); got ",
                                r.capacity_tokens()));
  }
  if (!(r.ttl_seconds() >= 0)) {
    return Invalid(
        absl::StrCat("ttl_seconds must be >= 0 (0 = the server's default); got ", r.ttl_seconds()));
  }
  const int64_t row_bytes =
      int64_t{r.num_heads_k()} * r.head_dim() * static_cast<int64_t>(DTypeSize(*dtype));
  const int64_t page_tokens = options_.page_bytes / (2 * row_bytes);
  if (page_tokens < 1) {
    return Invalid(absl::StrCat("num_heads_k * head_dim: one token's K and V (2 x ",
                                r.num_heads_k(), " x ", r.head_dim(), " x ", DTypeSize(*dtype),
                                " = ", 2 * row_bytes, " bytes) must fit one page (",
                                options_.page_bytes, " bytes, --session-page-bytes)"));
  }
  if (pools_.empty() || pools_.front()->total_pages() == 0) {
    return absl::UnimplementedError("sessions are off on this server (--session-memory-bytes 0)");
  }

  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = Now();
  EvictExpiredLocked(now);
  // The pool with the most free pages (the first on ties).
  int pool = 0;
  for (size_t i = 1; i < pools_.size(); ++i) {
    if (pools_[i]->free_pages() > pools_[pool]->free_pages()) pool = static_cast<int>(i);
  }
  const int64_t reserve_pages =
      r.capacity_tokens() / page_tokens + (r.capacity_tokens() % page_tokens != 0);
  if (reserve_pages > pools_[pool]->total_pages()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "capacity_tokens (", r.capacity_tokens(), ") needs ", reserve_pages, " pages of ",
        options_.page_bytes, " bytes (", page_tokens,
        " tokens each), more than the whole page pool of ", DeviceName(options_.devices[pool]),
        " (", pools_[pool]->total_pages(), " pages, ", options_.memory_bytes_per_device,
        " bytes, --session-memory-bytes)"));
  }
  if (static_cast<int>(sessions_.size()) >= options_.max_sessions) {
    if (!options_.evict_lru) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server holds its maximum of ", options_.max_sessions,
                       " sessions (--session-max); close one or wait for one to expire"));
    }
    auto lru = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.last_used < b.second.last_used; });
    RemoveLocked(lru->first, GoneReason::kEvictedLru);
  }
  Session s;
  s.id = absl::StrCat(instance_, "-", next_++);
  s.pool = pool;
  s.dtype = *dtype;
  s.num_heads_k = r.num_heads_k();
  s.head_dim = r.head_dim();
  s.row_bytes = row_bytes;
  s.page_tokens = static_cast<int32_t>(std::min<int64_t>(page_tokens, 1 << 30));
  s.ttl_seconds = r.ttl_seconds() > 0 ? std::min(r.ttl_seconds(), options_.max_ttl_seconds)
                                      : options_.default_ttl_seconds;
  s.last_used = now;
  if (reserve_pages > 0) {
    // Reservation: the session is not in sessions_ yet, so LRU eviction cannot pick it.
    if (absl::Status st = AdmitLocked(&s, reserve_pages, "capacity_tokens"); !st.ok()) return st;
    pools_[pool]->Allocate(reserve_pages, &s.reserve);
    s.reserved = true;
  }
  OpenedSession out;
  out.id = s.id;
  out.device = options_.devices[pool];
  out.page_tokens = s.page_tokens;
  out.page_bytes = options_.page_bytes;
  out.ttl_seconds = s.ttl_seconds;
  out.reserved_tokens = reserve_pages * page_tokens;
  sessions_.emplace(s.id, std::move(s));
  PublishLocked();
  return out;
}

absl::StatusOr<SessionStore::Session*> SessionStore::FindLocked(const std::string& id) {
  if (id.empty()) return Invalid("session_id must be set (the id OpenSession returned)");
  if (absl::Status st = CheckId("session_id", id, kMaxSessionIdBytes); !st.ok()) return st;
  auto it = sessions_.find(id);
  if (it != sessions_.end()) return &it->second;
  if (auto g = gone_.find(id); g != gone_.end()) {
    switch (g->second) {
      case GoneReason::kClosed:
        return absl::NotFoundError(
            absl::StrCat("session ", id, " is gone: it was closed (CloseSession)"));
      case GoneReason::kEvictedTtl:
        return absl::NotFoundError(absl::StrCat(
            "session ", id, " is gone: evicted after being idle past its TTL; open a new session"));
      case GoneReason::kEvictedLru:
        return absl::NotFoundError(
            absl::StrCat("session ", id,
                         " is gone: evicted (least recently used) to make room in the page pool "
                         "(--session-memory-bytes); open a new session"));
    }
  }
  const size_t dash = id.find('-');
  if (dash != std::string::npos && id.substr(0, dash) != instance_) {
    return absl::NotFoundError(absl::StrCat(
        "session ", id, " is gone: it was opened by another server process (this one is instance ",
        instance_,
        "): the server restarted, or the call reached another replica; sessions do not "
        "survive a restart, open a new one"));
  }
  return absl::NotFoundError(absl::StrCat("session ", id,
                                          " is not known to this server (never opened "
                                          "here, or forgotten long ago)"));
}

absl::StatusOr<SessionStore::CheckedRows> SessionStore::CheckRows(const Session& s,
                                                                  const v1::SessionRows& rows,
                                                                  const char* field) const {
  CheckedRows out;
  out.rows = &rows;
  const int n = rows.sequence_ids_size();
  const bool empty = n == 0 && rows.cu_seqlens_size() == 0 && !rows.has_k() && !rows.has_v();
  if (empty) return out;
  std::set<std::string> seen;
  for (int i = 0; i < n; ++i) {
    const std::string& sid = rows.sequence_ids(i);
    if (absl::Status st =
            CheckId(absl::StrCat(field, ".sequence_ids[", i, "]"), sid, kMaxSequenceIdBytes);
        !st.ok()) {
      return st;
    }
    if (!seen.insert(sid).second) {
      return Invalid(absl::StrCat(field, ".sequence_ids[", i, "] (\"", sid, "\") appears twice"));
    }
  }
  if (rows.cu_seqlens_size() != n + 1) {
    return Invalid(absl::StrCat(field, ".cu_seqlens must hold N+1 = ", n + 1, " entries (N = ", n,
                                " sequence_ids); got ", rows.cu_seqlens_size()));
  }
  const v1::DType want = ToProtoDType(s.dtype);
  for (const auto& [t, name] : {std::pair{&rows.k(), "k"}, std::pair{&rows.v(), "v"}}) {
    if (t->dtype() != want) {
      return Invalid(absl::StrCat(field, ".", name, ".dtype must be the session's dtype (",
                                  v1::DType_Name(want), "); got ", static_cast<int>(t->dtype())));
    }
    if (t->has_shm()) {
      return absl::UnimplementedError(
          absl::StrCat(field, ".", name, ".shm: session rows travel as data"));
    }
    if (t->shape_size() != 3 || t->shape(0) < 0 || t->shape(1) != s.num_heads_k ||
        t->shape(2) != s.head_dim) {
      return Invalid(absl::StrCat(field, ".", name, ".shape must be [total, Hk, D] = [total, ",
                                  s.num_heads_k, ", ", s.head_dim, "] (the session's); got ",
                                  ShapeText(*t)));
    }
  }
  if (rows.k().shape(0) != rows.v().shape(0)) {
    return Invalid(absl::StrCat(field, ".v.shape ", ShapeText(rows.v()), " must equal ", field,
                                ".k.shape ", ShapeText(rows.k())));
  }
  const int64_t total = rows.k().shape(0);
  if (rows.cu_seqlens(0) != 0) {
    return Invalid(absl::StrCat(field, ".cu_seqlens[0] must be 0; got ", rows.cu_seqlens(0)));
  }
  for (int i = 1; i <= n; ++i) {
    if (rows.cu_seqlens(i) < rows.cu_seqlens(i - 1)) {
      return Invalid(absl::StrCat(field, ".cu_seqlens must be non-decreasing; entry ", i, " (",
                                  rows.cu_seqlens(i), ") < entry ", i - 1, " (",
                                  rows.cu_seqlens(i - 1), ")"));
    }
  }
  if (rows.cu_seqlens(n) != total) {
    return Invalid(absl::StrCat(field, ".cu_seqlens[", n, "] must equal ", field, ".k.shape[0] (",
                                total, "); got ", rows.cu_seqlens(n)));
  }
  for (const auto& [t, name] : {std::pair{&rows.k(), "k"}, std::pair{&rows.v(), "v"}}) {
    // total <= bytes / row_bytes first, so the product cannot overflow.
    const int64_t bytes = static_cast<int64_t>(t->data().size());
    if (total > bytes / s.row_bytes || bytes != total * s.row_bytes) {
      return Invalid(absl::StrCat(field, ".", name, ".data must hold ", total * s.row_bytes,
                                  " bytes (shape ", ShapeText(*t), " of ", v1::DType_Name(want),
                                  "); got ", t->data().size()));
    }
  }
  for (int i = 0; i < n; ++i) out.ranges.emplace_back(rows.cu_seqlens(i), rows.cu_seqlens(i + 1));
  return out;
}

int64_t SessionStore::PagesNeeded(const Session& s, const CheckedRows& rows) const {
  int64_t pages = 0;
  for (size_t i = 0; i < rows.ranges.size(); ++i) {
    auto it = s.sequences.find(rows.rows->sequence_ids(static_cast<int>(i)));
    const int64_t len = it == s.sequences.end() ? 0 : it->second.length;
    const int64_t have =
        it == s.sequences.end() ? 0 : static_cast<int64_t>(it->second.pages.size());
    const int64_t after = len + rows.ranges[i].second - rows.ranges[i].first;
    pages += std::max<int64_t>(0, (after + s.page_tokens - 1) / s.page_tokens - have);
  }
  return pages;
}

absl::Status SessionStore::AdmitLocked(Session* s, int64_t pages, const char* what) {
  if (pages == 0) return absl::OkStatus();
  const int64_t pt = s->page_tokens;
  if (s->reserved) {
    if (pages <= static_cast<int64_t>(s->reserve.size())) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " needs ", pages, " more pages (", pt, " tokens each) but session ", s->id, " has ",
        s->reserve.size(), " of its reserved pages left (opened with capacity_tokens; it holds ",
        s->tokens, " tokens); open a session with a larger capacity"));
  }
  PagePool& pool = *pools_[s->pool];
  if (pages <= pool.free_pages()) return absl::OkStatus();
  auto refuse = [&](const std::string& extra) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " needs ", pages, " pages (", pages * pool.page_bytes(), " bytes, ", pt,
        " tokens per page) of the page pool of ", DeviceName(options_.devices[s->pool]),
        ", which has ", pool.free_pages(), " of ", pool.total_pages(), " pages free (budget ",
        options_.memory_bytes_per_device, " bytes, --session-memory-bytes)", extra));
  };
  if (!options_.evict_lru) return refuse("; eviction is off (--session-eviction none)");
  // Could evicting every other session of this pool make room? If not, evict none.
  int64_t evictable = 0;
  for (const auto& [id, other] : sessions_) {
    if (id == s->id || other.pool != s->pool) continue;
    evictable += other.reserve.size();
    for (const auto& [sid, seq] : other.sequences) evictable += seq.pages.size();
  }
  if (pool.free_pages() + evictable < pages) {
    return refuse(absl::StrCat(", and evicting every other session would free only ", evictable));
  }
  while (pool.free_pages() < pages) {
    const Session* lru = nullptr;
    for (const auto& [id, other] : sessions_) {
      if (id == s->id || other.pool != s->pool) continue;
      if (lru == nullptr || other.last_used < lru->last_used) lru = &other;
    }
    RemoveLocked(lru->id, GoneReason::kEvictedLru);
  }
  return absl::OkStatus();
}

void SessionStore::CommitRowsLocked(Session* s, const CheckedRows& rows) {
  PagePool& pool = *pools_[s->pool];
  const int64_t rb = s->row_bytes;
  const int64_t pt = s->page_tokens;
  for (size_t i = 0; i < rows.ranges.size(); ++i) {
    Sequence& seq = s->sequences[rows.rows->sequence_ids(static_cast<int>(i))];
    const auto [begin, end] = rows.ranges[i];
    const int64_t after = seq.length + (end - begin);
    const int64_t need = (after + pt - 1) / pt - static_cast<int64_t>(seq.pages.size());
    if (need > 0) {
      if (s->reserved) {
        seq.pages.insert(seq.pages.end(), s->reserve.end() - need, s->reserve.end());
        s->reserve.resize(s->reserve.size() - need);
      } else {
        pool.Allocate(need, &seq.pages);  // admitted: cannot fail
      }
    }
    const char* k = rows.rows->k().data().data();
    const char* v = rows.rows->v().data().data();
    for (int64_t r = begin; r < end; ++r, ++seq.length) {
      char* page = pool.data(seq.pages[seq.length / pt]);
      const int64_t slot = seq.length % pt;
      std::memcpy(page + slot * rb, k + r * rb, rb);
      std::memcpy(page + (pt + slot) * rb, v + r * rb, rb);
    }
    s->tokens += end - begin;
  }
}

absl::StatusOr<std::vector<int64_t>> SessionStore::Append(const std::string& id,
                                                          const v1::SessionRows& rows,
                                                          const char* field) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = Now();
  EvictExpiredLocked(now);
  absl::StatusOr<Session*> s = FindLocked(id);
  if (!s.ok()) return s.status();
  (*s)->last_used = now;
  absl::StatusOr<CheckedRows> checked = CheckRows(**s, rows, field);
  if (!checked.ok()) return checked.status();
  if (absl::Status st = AdmitLocked(*s, PagesNeeded(**s, *checked), "Append"); !st.ok()) return st;
  CommitRowsLocked(*s, *checked);
  std::vector<int64_t> lengths;
  for (const std::string& sid : rows.sequence_ids()) lengths.push_back((*s)->sequences[sid].length);
  PublishLocked();
  return lengths;
}

absl::StatusOr<std::vector<int64_t>> SessionStore::Attend(
    const std::string& id, const std::vector<std::string>& sequence_ids,
    const v1::SessionRows& append,
    const std::function<absl::Status(const ResidentView& view)>& prepare) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = Now();
  EvictExpiredLocked(now);
  absl::StatusOr<Session*> found = FindLocked(id);
  if (!found.ok()) return found.status();
  Session* s = *found;
  s->last_used = now;
  absl::StatusOr<CheckedRows> checked = CheckRows(*s, append, "append");
  if (!checked.ok()) return checked.status();
  // Pending rows per sequence id (from the append).
  std::map<std::string, std::pair<int64_t, int64_t>> pending;
  for (size_t i = 0; i < checked->ranges.size(); ++i) {
    pending[append.sequence_ids(static_cast<int>(i))] = checked->ranges[i];
  }
  std::set<std::string> seen;
  ResidentView view;
  view.dtype = s->dtype;
  view.num_heads_k = s->num_heads_k;
  view.head_dim = s->head_dim;
  view.device = options_.devices[s->pool];
  for (size_t i = 0; i < sequence_ids.size(); ++i) {
    const std::string& sid = sequence_ids[i];
    if (absl::Status st = CheckId(absl::StrCat("sequence_ids[", i, "]"), sid, kMaxSequenceIdBytes);
        !st.ok()) {
      return st;
    }
    if (!seen.insert(sid).second) {
      return Invalid(absl::StrCat("sequence_ids[", i, "] (\"", sid, "\") appears twice"));
    }
    auto it = s->sequences.find(sid);
    auto p = pending.find(sid);
    if (it == s->sequences.end() && p == pending.end()) {
      return absl::NotFoundError(absl::StrCat("sequence_ids[", i, "] (\"", sid,
                                              "\") is not in session ", id,
                                              " (append rows to it first)"));
    }
    const int64_t resident = it == s->sequences.end() ? 0 : it->second.length;
    const int64_t added = p == pending.end() ? 0 : p->second.second - p->second.first;
    view.lengths.push_back(resident + added);
  }
  const PagePool& pool = *pools_[s->pool];
  view.gather = [&](char* k_dst, char* v_dst) {
    const int64_t rb = s->row_bytes, pt = s->page_tokens;
    for (const std::string& sid : sequence_ids) {
      auto it = s->sequences.find(sid);
      if (it != s->sequences.end()) {
        const Sequence& seq = it->second;
        // Whole runs of a page at a time: its K rows are contiguous, and so are its V rows.
        for (int64_t r = 0; r < seq.length; r += pt) {
          const int64_t n = std::min(pt, seq.length - r);
          const char* page = pool.data(seq.pages[r / pt]);
          std::memcpy(k_dst, page, n * rb);
          std::memcpy(v_dst, page + pt * rb, n * rb);
          k_dst += n * rb;
          v_dst += n * rb;
        }
      }
      if (auto p = pending.find(sid); p != pending.end()) {
        const auto [begin, end] = p->second;
        std::memcpy(k_dst, append.k().data().data() + begin * rb, (end - begin) * rb);
        std::memcpy(v_dst, append.v().data().data() + begin * rb, (end - begin) * rb);
        k_dst += (end - begin) * rb;
        v_dst += (end - begin) * rb;
      }
    }
  };
  if (absl::Status st = prepare(view); !st.ok()) return st;
  if (absl::Status st = AdmitLocked(s, PagesNeeded(*s, *checked), "AttendSession (append)");
      !st.ok()) {
    return st;
  }
  CommitRowsLocked(s, *checked);
  PublishLocked();
  return view.lengths;
}

absl::StatusOr<int64_t> SessionStore::Close(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  EvictExpiredLocked(Now());
  absl::StatusOr<Session*> s = FindLocked(id);
  if (!s.ok()) return s.status();
  int64_t pages = static_cast<int64_t>((*s)->reserve.size());
  for (const auto& [sid, seq] : (*s)->sequences) pages += static_cast<int64_t>(seq.pages.size());
  const int64_t bytes = pages * pools_[(*s)->pool]->page_bytes();
  RemoveLocked(id, GoneReason::kClosed);
  PublishLocked();
  return bytes;
}

void SessionStore::EvictExpired() {
  std::lock_guard<std::mutex> lock(mu_);
  EvictExpiredLocked(Now());
  PublishLocked();
}

void SessionStore::EvictExpiredLocked(TimePoint now) {
  std::vector<std::string> expired;
  for (const auto& [id, s] : sessions_) {
    if (Seconds(now - s.last_used) > s.ttl_seconds) expired.push_back(id);
  }
  for (const std::string& id : expired) RemoveLocked(id, GoneReason::kEvictedTtl);
}

void SessionStore::RemoveLocked(std::string id, GoneReason reason) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  PagePool& pool = *pools_[it->second.pool];
  pool.Free(it->second.reserve);
  for (const auto& [sid, seq] : it->second.sequences) pool.Free(seq.pages);
  sessions_.erase(it);
  if (gone_.emplace(id, reason).second) gone_order_.push_back(id);
  while (gone_order_.size() > kMaxGone) {
    gone_.erase(gone_order_.front());
    gone_order_.pop_front();
  }
  if (metrics_ != nullptr && reason != GoneReason::kClosed)
    metrics_->AddSessionEviction(GoneReasonName(reason));
}

void SessionStore::PublishLocked() {
  if (metrics_ == nullptr) return;
  for (size_t i = 0; i < pools_.size(); ++i) {
    int64_t open = 0;
    for (const auto& [id, s] : sessions_) open += s.pool == static_cast<int>(i);
    const PagePool& p = *pools_[i];
    metrics_->SetSessionPool(options_.devices[i] < 0 ? "cpu" : absl::StrCat(options_.devices[i]),
                             open, p.used_pages(), p.total_pages(),
                             p.used_pages() * p.page_bytes());
  }
}

int64_t SessionStore::open_sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(sessions_.size());
}

int64_t SessionStore::free_pages(int device_index) const {
  std::lock_guard<std::mutex> lock(mu_);
  return pools_.at(device_index)->free_pages();
}

int64_t SessionStore::total_pages(int device_index) const {
  std::lock_guard<std::mutex> lock(mu_);
  return pools_.at(device_index)->total_pages();
}

}  // namespace hbsa::server
