"""Sessions of server-resident K/V (proto/hbsa/v1/session.proto).

    with client.open_session(dtype="bf16", num_heads_k=8, head_dim=128) as s:
        s.append("req-17", k_prompt, v_prompt)             # prefill rows
        out = s.attend("req-17", q_step, [0, 1], mask, 64, 64, causal=True,
                       append=("req-17", k_step, v_step))  # one decode step, new row included

The block mask and causal rule refer to positions in the resident sequence: the key length of a
sequence is its resident length after the call's own append, and causal is bottom-right aligned
(the last new query meets the last resident key). Tensors are NumPy arrays or torch tensors as
for Client.attend; results come back as the caller's kind (torch on q's device for torch q).

A session is gone when it was closed, evicted (idle past its TTL, or least recently used when
the server's page pool was full) or when its server restarted: calls then raise
hbsa.NotFoundError whose message says which. Session calls are never retried (an append is not
idempotent). A Session is not thread-safe.
"""
import bisect

from . import _masks, _tensors
from .errors import client_error, from_rpc_error
from .v1 import attention_pb2, session_pb2, session_pb2_grpc

import grpc


def _ids(sequence_ids):
    return [sequence_ids] if isinstance(sequence_ids, str) else [str(s) for s in sequence_ids]


class Session:
    """One session; made by Client.open_session. Use as a context manager (closes on exit)."""

    def __init__(self, channel, timeout, dtype, num_heads_k, head_dim, capacity_tokens=0,
                 ttl_seconds=0.0):
        self._stub = session_pb2_grpc.SessionsStub(channel)
        self._timeout = timeout
        self.dtype = _tensors.canonical_dtype(dtype)
        if self.dtype is None:
            raise client_error("dtype must be given: fp16, bf16 or fp32")
        self.num_heads_k = int(num_heads_k)
        self.head_dim = int(head_dim)
        self.lengths = {}  # resident rows per sequence id, as the server last reported them
        req = session_pb2.OpenSessionRequest(
            dtype=_tensors.WIRE[self.dtype], num_heads_k=self.num_heads_k,
            head_dim=self.head_dim, capacity_tokens=int(capacity_tokens),
            ttl_seconds=float(ttl_seconds))
        self.info = self._call("OpenSession", req, timeout)  # page_tokens, ttl_seconds, device
        self.id = self.info.session_id

    def _call(self, method, req, timeout):
        try:
            return getattr(self._stub, method)(req, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _rows(self, msg, sequence_ids, k, v, cu_seqlens):
        ids = _ids(sequence_ids)
        for x, label in ((k, "k"), (v, "v")):
            if _tensors.tensor_dtype(x, self.dtype) != self.dtype:
                raise client_error("%s must have the session's dtype %s" % (label, self.dtype))
        ka, va = _tensors.to_numpy(k), _tensors.to_numpy(v)
        if ka.ndim != 3 or ka.shape != va.shape:
            raise client_error("k and v must be 3-D [total, Hk, D] of one shape; got %s and %s"
                               % (list(ka.shape), list(va.shape)))
        if cu_seqlens is None:
            if len(ids) != 1:
                raise client_error("cu_seqlens is needed for more than one sequence")
            cu_seqlens = [0, ka.shape[0]]
        cu = _tensors.int32_list(cu_seqlens, "cu_seqlens")
        msg.sequence_ids.extend(ids)
        msg.cu_seqlens.extend(cu)
        for t, a in ((msg.k, ka), (msg.v, va)):
            t.dtype = _tensors.WIRE[self.dtype]
            t.shape.extend(int(s) for s in a.shape)
            t.data = a.tobytes()
        return ids, cu

    def append(self, sequence_ids, k, v, cu_seqlens=None, timeout=None):
        """Appends K/V rows [total, Hk, D] to one sequence (a str) or several (a list, with
        cu_seqlens [N+1]). Returns the resident lengths after it, in sequence_ids order."""
        req = session_pb2.AppendRequest(session_id=self.id)
        ids, _ = self._rows(req.rows, sequence_ids, k, v, cu_seqlens)
        resp = self._call("Append", req, timeout if timeout is not None else self._timeout)
        lengths = list(resp.sequence_lengths)
        self.lengths.update(zip(ids, lengths))
        return lengths

    def attend(self, sequence_ids, q, cu_seqlens_q, block_mask, q_block_size, k_block_size,
               causal=False, softmax_scale=None, return_lse=False, append=None,
               mask_form="dense", request_id="", timeout=None):
        """Attention of q [total_q, Hq, D] (sequence b's queries are rows cu_seqlens_q[b] to
        cu_seqlens_q[b+1]) against the resident K/V of sequence_ids, after appending `append`
        = (sequence_ids, k, v) or (sequence_ids, k, v, cu_seqlens) if given. block_mask as for
        Client.attend, over resident key blocks (Nk = sum of ceil(L_b / k_block_size)).
        Returns out, or (out, lse) with return_lse=True."""
        ids = _ids(sequence_ids)
        name = _tensors.tensor_dtype(q, self.dtype)
        qa = _tensors.to_numpy(q)
        if qa.ndim != 3:
            raise client_error("q must be 3-D [total_q, Hq, D]; got shape %s" % list(qa.shape))
        req = session_pb2.AttendSessionRequest(session_id=self.id, request_id=request_id)
        req.sequence_ids.extend(ids)
        req.q.dtype = _tensors.WIRE[name]
        req.q.shape.extend(int(s) for s in qa.shape)
        req.q.data = qa.tobytes()
        cu_q = _tensors.int32_list(cu_seqlens_q, "cu_seqlens_q")
        req.cu_seqlens_q.extend(cu_q)
        pending = {}
        if append is not None:
            a_ids, a_cu = self._rows(req.append, *append[:3],
                                     append[3] if len(append) > 3 else None)
            pending = {i: a_cu[n + 1] - a_cu[n] for n, i in enumerate(a_ids)}
        req.q_block_size = int(q_block_size)
        req.k_block_size = int(k_block_size)
        req.causal = bool(causal)
        if softmax_scale is not None:
            req.softmax_scale = float(softmax_scale)
        req.return_lse = bool(return_lse)
        # Key lengths as the server will see them: resident (as last reported) + appended.
        cu_k = [0]
        for i in ids:
            cu_k.append(cu_k[-1] + self.lengths.get(i, 0) + pending.get(i, 0))
        if _tensors.is_torch(block_mask):
            block_mask = _tensors.to_numpy(block_mask)
        _masks.fill_request_mask(req, block_mask, cu_q, cu_k, int(q_block_size), int(k_block_size),
                                 self.num_heads_k, mask_form)
        resp = self._call("AttendSession", req, timeout if timeout is not None else self._timeout)
        self.lengths.update(zip(ids, resp.sequence_lengths))
        for i, n in pending.items():
            if i not in ids:
                self.lengths[i] = self.lengths.get(i, 0) + n
        self.last_response = resp.attention
        total_q, hq, d = (int(s) for s in qa.shape)
        r = resp.attention
        es = 4 if name == "fp32" else 2
        if r.out.dtype != req.q.dtype or len(r.out.data) != total_q * hq * d * es:
            raise client_error("malformed response: out does not match [total_q, Hq, D] %s" % name)
        out = _tensors.from_wire(r.out.data, (total_q, hq, d), name, q)
        if not return_lse:
            return out
        if len(r.lse.data) != total_q * hq * 4:
            raise client_error("malformed response: lse does not match [total_q, Hq] fp32")
        return out, _tensors.lse_from_wire(r.lse.data, (total_q, hq), q)

    def close(self, timeout=None):
        """Frees the session on the server (at once). Returns the bytes freed. Idempotent on
        the client: a closed Session is not closed again."""
        if self.id is None:
            return 0
        sid, self.id = self.id, None
        resp = self._call("CloseSession", session_pb2.CloseSessionRequest(session_id=sid),
                          timeout if timeout is not None else self._timeout)
        return resp.freed_bytes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.id is not None:
            try:
                self.close()
            except Exception:  # the session may be gone already; closing is best effort here
                if exc[0] is None:
                    raise


_FNV_OFFSET, _FNV_PRIME, _MASK64 = 14695981039346656037, 1099511628211, (1 << 64) - 1


def route_hash(data):
    """The router's hash of `data` (bytes or str, UTF-8): FNV-1a 64, then MurmurHash3's fmix64
    (so keys differing only in their last bytes spread over the ring); the same function as
    the C++ client's hbsa::client::RouteHash."""
    if isinstance(data, str):
        data = data.encode()
    h = _FNV_OFFSET
    for c in data:
        h = ((h ^ c) * _FNV_PRIME) & _MASK64
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & _MASK64
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & _MASK64
    h ^= h >> 33
    return h


class SessionRouter:
    """Routes sessions over several replicas by consistent hashing of a caller-chosen key (a
    conversation or request id): each address owns `virtual_nodes` points of a 64-bit ring
    (route_hash of "<address>#<i>"), a key belongs to the first point at or after
    route_hash(key). The same address list gives the same replica for a key in every client
    (C++ and Python alike); removing an address moves only its keys. Keyword arguments go to
    each replica's hbsa.Client (one per address, made on first use)."""

    def __init__(self, addresses, virtual_nodes=128, **client_kwargs):
        self.addresses = sorted(set(addresses))
        if not self.addresses:
            raise client_error("SessionRouter needs at least one address")
        self._ring = sorted((route_hash("%s#%d" % (a, v)), i)
                            for i, a in enumerate(self.addresses)
                            for v in range(max(int(virtual_nodes), 1)))
        self._points = [p for p, _ in self._ring]
        self._kwargs = dict(client_kwargs, load_balancing="pick_first")
        self._clients = {}

    def address_for(self, key):
        i = bisect.bisect_left(self._points, route_hash(key))
        return self.addresses[self._ring[i % len(self._ring)][1]]

    def client_for(self, key):
        from ._client import Client
        a = self.address_for(key)
        if a not in self._clients:
            self._clients[a] = Client(a, **self._kwargs)
        return self._clients[a]

    def open_session(self, key, dtype, num_heads_k, head_dim, **kwargs):
        """Client.open_session on the replica of `key`."""
        return self.client_for(key).open_session(dtype, num_heads_k, head_dim, **kwargs)

    def close(self):
        for c in self._clients.values():
            c.close()
        self._clients = {}
