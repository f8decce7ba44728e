"""hbsa._client: Client (blocking) and AsyncClient (grpc.aio); the drop-in is hbsa/_dropin.py.

`attend` takes the arguments of the upstream hbsattn `HBSAttention` function in the same order
(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size, causal,
softmax_scale), so code switches by changing an import; `return_lse=True` also returns the
log-sum-exp. Shapes and meaning: SEMANTICS.md of the hbsa repository.
"""
import asyncio
import json
import queue
import uuid

import grpc
import numpy as np

from . import _masks, _stream, _tensors, _wire
from .errors import client_error, from_code, from_rpc_error
from .v1 import attention_pb2, attention_pb2_grpc

DEFAULT_MAX_MESSAGE_BYTES = 512 << 20
_SERVICE = "hbsa.v1.Attention"
_END = object()  # end of the caller's request iterable


def _normalize_target(target):
    """host:port as is; "a:p,b:p" -> "ipv4:a:p,b:p"; URIs (dns:///, ipv4:, unix:) as is."""
    if "://" in target or ":/" in target or target.startswith(("ipv4:", "ipv6:", "unix:")):
        return target
    if "," in target:
        return "ipv4:" + target
    return target


def _channel_options(max_message_bytes, load_balancing, retries):
    """Message limits, round-robin across every resolved address, and transparent retries of
    UNAVAILABLE only (the server never processed the request), with exponential backoff."""
    config = {
        "loadBalancingConfig": [{load_balancing: {}}],
        "methodConfig": [{
            "name": [{"service": _SERVICE}],
            "retryPolicy": {
                "maxAttempts": max(2, retries),
                "initialBackoff": "0.05s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    }
    opts = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", json.dumps(config)),
        ("grpc.enable_retries", 1 if retries > 1 else 0),
        # Retries replay the request from a buffer: let it hold a whole request.
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
        ("grpc.retry_buffer_size", max_message_bytes),
        ("grpc.keepalive_time_ms", 30000),
    ]
    return opts


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise client_error("cannot read %s %r: %s" % (what, path, e.strerror)) from None


def _security(tls, ca_file, cert_file, key_file, server_name, token, token_file):
    """(channel credentials or None for plaintext, extra channel options) for the TLS and token
    arguments of Client. A token is sent only over TLS (the server refuses it otherwise too)."""
    tls = bool(tls or ca_file or cert_file or key_file or server_name)
    if token_file is not None:
        if token is not None:
            raise client_error("give token or token_file, not both")
        lines = _read(token_file, "token file").decode(errors="replace").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise client_error("token file %r has an empty first line" % token_file)
    if token is not None and not tls:
        raise client_error("a bearer token needs TLS (tls=True or ca_file=...): tokens are never "
                           "sent in plaintext")
    if not tls:
        return None, []
    if bool(cert_file) != bool(key_file):
        raise client_error("cert_file and key_file go together (mutual TLS needs both)")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA file") if ca_file else None,
        private_key=_read(key_file, "client key") if key_file else None,
        certificate_chain=_read(cert_file, "client certificate") if cert_file else None)
    if token is not None:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return creds, options


def _health_request(service):
    """grpc.health.v1.HealthCheckRequest{service} encoded by hand (one string field), so the
    package needs no second set of stubs (and cannot clash with grpcio-health-checking)."""
    data = service.encode()
    n, varint = len(data), bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        varint.append(b | (0x80 if n else 0))
        if not n:
            break
    return (b"\x0a" + bytes(varint) + data) if data else b""


def _health_status(raw):
    """Reads HealthCheckResponse.status (field 1, varint) -> its name."""
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    status, i = 0, 0
    while i < len(raw):
        key = raw[i]
        i += 1
        if key == 0x08:
            shift, status = 0, 0
            while True:
                b = raw[i]
                i += 1
                status |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        else:
            break  # unknown field: keep what we have
    return names.get(status, "UNKNOWN")


def build_request(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size,
                  causal=False, softmax_scale=None, return_lse=False, dtype=None,
                  mask_form="dense", request_id="", allow_tf32=False):
    """The AttendRequest for these arguments (see Client.attend)."""
    req, name, arrays = _request_parts(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size,
                                       k_block_size, causal, softmax_scale, return_lse, dtype,
                                       mask_form, request_id, allow_tf32)
    for msg, arr in zip((req.q, req.k, req.v), arrays):
        msg.data = arr.tobytes()
    return req, name


def build_request_bytes(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size,
                        k_block_size, causal=False, softmax_scale=None, return_lse=False,
                        dtype=None, mask_form="dense", request_id="", allow_tf32=False):
    """The serialized AttendRequest, built around the arrays' own buffers: the tensor bytes are
    copied once, into the returned bytes (CUDA tensors first come to the host). Returns
    (bytes, wire dtype name, the AttendRequest header without tensor data)."""
    req, name, arrays = _request_parts(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size,
                                       k_block_size, causal, softmax_scale, return_lse, dtype,
                                       mask_form, request_id, allow_tf32)
    header = attention_pb2.AttendRequest()
    header.CopyFrom(req)
    header.ClearField("q")
    header.ClearField("k")
    header.ClearField("v")
    wire = _tensors.WIRE[name]
    raw = _wire.request_bytes(header, [(2, wire, arrays[0].shape, arrays[0]),
                                       (3, wire, arrays[1].shape, arrays[1]),
                                       (4, wire, arrays[2].shape, arrays[2])])
    return raw, name, req


def _request_parts(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size,
                   causal, softmax_scale, return_lse, dtype, mask_form, request_id, allow_tf32):
    """The request without tensor data (shapes and dtypes set), and q/k/v as C-contiguous
    little-endian NumPy arrays (views of the caller's memory where possible)."""
    name = _tensors.tensor_dtype(q, dtype)
    for other, label in ((k, "k"), (v, "v")):
        if _tensors.tensor_dtype(other, name) != name:
            raise client_error("%s must have q's dtype" % label)
    qa, ka, va = (_tensors.to_numpy(x) for x in (q, k, v))
    if qa.ndim != 3 or ka.ndim != 3 or va.ndim != 3:
        raise client_error("q, k and v must be 3-D [total, heads, D]")
    req = attention_pb2.AttendRequest(request_id=request_id)
    for msg, arr in ((req.q, qa), (req.k, ka), (req.v, va)):
        msg.dtype = _tensors.WIRE[name]
        msg.shape.extend(int(s) for s in arr.shape)
    cu_q = _tensors.int32_list(cu_seqlens_q, "cu_seqlens_q")
    cu_k = _tensors.int32_list(cu_seqlens_k, "cu_seqlens_k")
    req.cu_seqlens_q.extend(cu_q)
    req.cu_seqlens_k.extend(cu_k)
    req.q_block_size = int(q_block_size)
    req.k_block_size = int(k_block_size)
    req.causal = bool(causal)
    if softmax_scale is not None:
        req.softmax_scale = float(softmax_scale)
    req.return_lse = bool(return_lse)
    req.allow_tf32 = bool(allow_tf32)
    if _tensors.is_torch(block_mask):
        block_mask = _tensors.to_numpy(block_mask)
    _masks.fill_request_mask(req, block_mask, cu_q, cu_k, int(q_block_size), int(k_block_size),
                             int(ka.shape[1]), mask_form)
    return req, name, (qa, ka, va)


def _unpack_raw(raw, req, dtype_name, like, return_lse, out=None, lse_out=None):
    """Reads a serialized AttendResponse: out (and lse) straight from the received bytes into
    `out`/`lse_out` (NumPy arrays of the right shape and dtype) when given, else into new
    arrays (torch for torch callers), one copy either way. Returns (result, response without
    out/lse data)."""
    rest, out_t, lse_t = _wire.split_response(raw)
    resp = attention_pb2.AttendResponse.FromString(rest)
    total_q, hq, d = (int(s) for s in req.q.shape)
    es = 4 if dtype_name == "fp32" else 2
    if out_t is None or out_t[0] != req.q.dtype or out_t[3] != total_q * hq * d * es:
        raise client_error("malformed response: out does not match [total_q, Hq, D] %s" % dtype_name)
    mv = memoryview(raw)
    out_view = np.frombuffer(mv[out_t[2]:out_t[2] + out_t[3]],
                             dtype=np.dtype(_tensors.NP[dtype_name]).newbyteorder("<")).reshape(total_q, hq, d)
    result = _tensors.into_caller(out_view, out, like)
    if not return_lse:
        return result, resp
    if lse_t is None or lse_t[3] != total_q * hq * 4:
        raise client_error("malformed response: lse does not match [total_q, Hq] fp32")
    lse_view = np.frombuffer(mv[lse_t[2]:lse_t[2] + lse_t[3]], dtype="<f4").reshape(total_q, hq)
    return (result, _tensors.into_caller(lse_view, lse_out, like)), resp


def _unpack(resp, req, dtype_name, like, return_lse):
    total_q, hq, d = (int(s) for s in req.q.shape)
    if resp.out.dtype != req.q.dtype or len(resp.out.data) != total_q * hq * d * (4 if dtype_name == "fp32" else 2):
        raise client_error("malformed response: out does not match [total_q, Hq, D] %s" % dtype_name)
    out = _tensors.from_wire(resp.out.data, (total_q, hq, d), dtype_name, like)
    if not return_lse:
        return out
    if len(resp.lse.data) != total_q * hq * 4:
        raise client_error("malformed response: lse does not match [total_q, Hq] fp32")
    return out, _tensors.lse_from_wire(resp.lse.data, (total_q, hq), like)


class _Base:
    def __init__(self, target, timeout, max_message_bytes, load_balancing, retries, mask_form,
                 security):
        self.target = _normalize_target(target)
        self.timeout = timeout
        self.mask_form = mask_form
        self._credentials, extra = _security(**security)
        self._options = _channel_options(max_message_bytes, load_balancing, retries) + extra
        self.last_response = None  # the last AttendResponse (timings, backend), for inspection

    def _make_channel(self, module):
        if self._credentials is None:
            return module.insecure_channel(self.target, options=self._options)
        return module.secure_channel(self.target, self._credentials, options=self._options)

    def _request(self, args, kwargs):
        kw = dict(kwargs)
        kw.setdefault("mask_form", self.mask_form)
        kw.setdefault("request_id", uuid.uuid4().hex[:16])
        timeout = kw.pop("timeout", self.timeout)
        out = kw.pop("out", None)
        lse_out = kw.pop("lse_out", None)
        raw, name, req = build_request_bytes(*args, **kw)
        return raw, req, name, timeout, out, lse_out


class Client(_Base):
    """Blocking client. Thread-safe; one per process and target is enough.

    target: "host:port", "dns:///name:port" (round robin over every address, e.g. a headless
    Kubernetes Service), or "ipv4:a:p,b:p" / "a:p,b:p". timeout: seconds per call (None = no
    deadline). retries: total attempts for UNAVAILABLE (1 = none). mask_form: default wire form
    of the mask ("dense", "per_sequence", "compact").

    Security (the server's --tls-* and --auth-token-file flags): tls=True for TLS with the
    default CA roots; ca_file (PEM) to trust a private CA (implies TLS); cert_file + key_file
    for mutual TLS; server_name when the certificate's name differs from the target's host;
    token (str) or token_file (first line) for "authorization: Bearer <token>", which needs
    TLS. Files are read when the client is made; errors raise InvalidArgumentError."""

    def __init__(self, target, *, timeout=60.0, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                 load_balancing="round_robin", retries=4, mask_form="dense", tls=False,
                 ca_file=None, cert_file=None, key_file=None, server_name=None, token=None,
                 token_file=None):
        super().__init__(target, timeout, max_message_bytes, load_balancing, retries, mask_form,
                         dict(tls=tls, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                              server_name=server_name, token=token, token_file=token_file))
        self._channel = self._make_channel(grpc)
        self._stub = attention_pb2_grpc.AttentionStub(self._channel)
        # Attend as raw bytes in and out (hbsa._wire): no protobuf copies of tensor data.
        self._raw_attend = self._channel.unary_unary("/hbsa.v1.Attention/Attend")
        self._raw_stream = self._channel.stream_stream("/hbsa.v1.Attention/AttendStream")
        self._health = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=_health_request,
            response_deserializer=_health_status)

    def attend(self, q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size,
               causal=False, softmax_scale=None, return_lse=False, **kwargs):
        """Block-sparse attention on the server.

        q [total_q, Hq, D], k/v [total_k, Hk, D]: NumPy float16/float32 (or uint16 bf16 bits with
        dtype="bf16") or torch float16/bfloat16/float32. cu_seqlens_*: [B+1] ints. block_mask:
        bool [Hk, Nq, Nk] (array or tensor), CompactMask or PerSequenceMask. softmax_scale None =
        1/sqrt(D). Keywords: dtype, mask_form, request_id, timeout, allow_tf32, and out= /
        lse_out=: NumPy arrays ([total_q, Hq, D] of the wire dtype; [total_q, Hq] float32) that
        receive the answer (returned as given), so no new array is made.
        Returns out (the caller's kind and dtype), or (out, lse) with return_lse=True (lse fp32
        [total_q, Hq], -inf for rows with no allowed key). Raises hbsa.HbsaError subclasses.
        Copies: q, k and v once into the request bytes (after the device-to-host copy for CUDA
        tensors; grpcio then copies the bytes into its own buffers), out and lse once from the
        received bytes (then to the device for CUDA callers)."""
        raw, req, name, timeout, out, lse_out = self._request(
            (q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size, causal,
             softmax_scale, return_lse), kwargs)
        try:
            answer = self._raw_attend(raw, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        result, self.last_response = _unpack_raw(answer, req, name, q, return_lse, out, lse_out)
        return result

    def open_session(self, dtype, num_heads_k, head_dim, capacity_tokens=0, ttl_seconds=0.0,
                     timeout=None):
        """Opens a Session of server-resident K/V (hbsa/_session.py) on this client's channel:
        dtype "fp16"/"bf16"/"fp32" (or a torch dtype), Hk, D; capacity_tokens > 0 reserves
        pages up front; ttl_seconds 0 = the server's default idle TTL. Use it as a context
        manager: it is closed on exit."""
        from ._session import Session
        return Session(self._channel, timeout if timeout is not None else self.timeout, dtype,
                       num_heads_k, head_dim, capacity_tokens, ttl_seconds)

    def attend_stream(self, requests, *, max_in_flight=8, timeout=None):
        """Many attention calls over one AttendStream (a pipeline): an iterator that yields one
        hbsa.StreamResult per item of `requests`, in the order the answers arrive
        (StreamResult.index is the item's position).

        requests: an iterable, read lazily, of tuples of attend's positional arguments or dicts
        of its keywords (q=..., return_lse, dtype, mask_form, request_id, allow_tf32, out=,
        lse_out=; no timeout). Back-pressure: at most max_in_flight requests are sent and not
        yet answered; the next item is read only when an answer frees a slot. Per-request
        errors: a request the server refuses (or the client cannot encode) yields a
        StreamResult whose `error` is its HbsaError; the stream goes on. The stream's own end
        (transport error, `timeout` seconds for the whole stream passed, None = none) raises its
        HbsaError; requests not yielded by then were not answered. Closing the iterator early
        (break) cancels the stream. Request ids default to random ones, as for attend; ids in
        flight together must differ."""
        _stream.check_window(max_in_flight)
        return self._stream(iter(requests), max_in_flight, timeout)

    def _stream(self, requests, window, timeout):
        state = _stream.StreamState(self, _unpack_raw)
        send = queue.SimpleQueue()  # request bytes for gRPC's sending thread; None half-closes
        call = self._raw_stream(iter(send.get, None), timeout=timeout)
        exhausted = False
        try:
            while True:
                while not exhausted and state.unanswered() < window:
                    item = next(requests, _END)
                    if item is _END:
                        exhausted = True
                        send.put(None)
                        break
                    raw, refused = state.add(item)
                    if refused is not None:
                        yield refused
                    else:
                        send.put(raw)
                try:
                    raw = next(call, None)
                except grpc.RpcError as e:
                    raise from_rpc_error(e) from None
                if raw is None:  # the server finished the stream
                    if state.unanswered():
                        raise _stream.stream_ended_early(state.unanswered())
                    return
                yield state.answer(raw)
        finally:
            send.put(None)
            call.cancel()  # no-op once the call is over

    def capabilities(self):
        """The server's hbsa.v1.Capabilities message."""
        try:
            return self._stub.GetCapabilities(attention_pb2.GetCapabilitiesRequest(),
                                              timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def health(self, service=""):
        """grpc.health.v1 status name: "SERVING", "NOT_SERVING", ... ("" = whole server)."""
        try:
            return self._health(service, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What a write or half-close on an asynchronous stream raises once the call has ended (see
# AsyncClient._stream). cygrpc is grpcio's own extension module, loaded by `import grpc`.
_CALL_ENDED = (grpc.RpcError, asyncio.InvalidStateError) + tuple(
    c for c in (getattr(getattr(getattr(grpc, "_cython", None), "cygrpc", None),
                        "ExecuteBatchError", None),) if isinstance(c, type))

class AsyncClient(_Base):
    """asyncio client (grpc.aio), same arguments as Client; create it inside a running loop."""

    def __init__(self, target, *, timeout=60.0, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                 load_balancing="round_robin", retries=4, mask_form="dense", tls=False,
                 ca_file=None, cert_file=None, key_file=None, server_name=None, token=None,
                 token_file=None):
        super().__init__(target, timeout, max_message_bytes, load_balancing, retries, mask_form,
                         dict(tls=tls, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                              server_name=server_name, token=token, token_file=token_file))
        self._channel = self._make_channel(grpc.aio)
        self._stub = attention_pb2_grpc.AttentionStub(self._channel)
        self._raw_attend = self._channel.unary_unary("/hbsa.v1.Attention/Attend")
        self._raw_stream = self._channel.stream_stream("/hbsa.v1.Attention/AttendStream")
        self._health = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=_health_request,
            response_deserializer=_health_status)

    async def attend(self, q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size,
                     k_block_size, causal=False, softmax_scale=None, return_lse=False, **kwargs):
        """As Client.attend, awaited."""
        raw, req, name, timeout, out, lse_out = self._request(
            (q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, q_block_size, k_block_size, causal,
             softmax_scale, return_lse), kwargs)
        try:
            answer = await self._raw_attend(raw, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        result, self.last_response = _unpack_raw(answer, req, name, q, return_lse, out, lse_out)
        return result

    def attend_stream(self, requests, *, max_in_flight=8, timeout=None):
        """As Client.attend_stream, as an async iterator (`async for r in
        client.attend_stream(items)`); `requests` may be an iterable or an async iterable."""
        _stream.check_window(max_in_flight)
        return self._stream(requests, max_in_flight, timeout)

    async def _stream(self, requests, window, timeout):
        if hasattr(requests, "__aiter__"):
            items = requests.__aiter__()

            async def next_item():
                try:
                    return await items.__anext__()
                except StopAsyncIteration:
                    return _END
        else:
            items = iter(requests)

            async def next_item():
                return next(items, _END)

        async def rpc(op):
            try:
                return await op
            except _CALL_ENDED as e:
                # A write to a call that has ended: grpcio 1.60 replaces the call's status by
                # INTERNAL "Internal error from Core" (newer releases keep the real one), so a
                # passed deadline is recognised by the clock; InvalidStateError: it ended OK;
                # ExecuteBatchError (grpcio 1.85, done_writing on an ended call): the call's own
                # status says how it ended.
                if deadline is not None and loop.time() >= deadline:
                    raise from_code(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
                if isinstance(e, grpc.RpcError):
                    raise from_rpc_error(e) from None
                if not isinstance(e, asyncio.InvalidStateError):
                    code = await call.code()
                    if code != grpc.StatusCode.OK:
                        raise from_code(code, await call.details()) from None
                raise _stream.stream_ended_early(state.unanswered()) from None

        state = _stream.StreamState(self, _unpack_raw)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        call = self._raw_stream(timeout=timeout)
        exhausted = False
        try:
            while True:
                while not exhausted and state.unanswered() < window:
                    item = await next_item()
                    if item is _END:
                        exhausted = True
                        await rpc(call.done_writing())
                        break
                    raw, refused = state.add(item)
                    if refused is not None:
                        yield refused
                    else:
                        await rpc(call.write(raw))
                raw = await rpc(call.read())
                if raw is grpc.aio.EOF:  # the server finished the stream
                    if state.unanswered():
                        raise _stream.stream_ended_early(state.unanswered())
                    return
                yield state.answer(raw)
        finally:
            call.cancel()  # no-op once the call is over

    async def capabilities(self):
        try:
            return await self._stub.GetCapabilities(attention_pb2.GetCapabilitiesRequest(),
                                                    timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def health(self, service=""):
        try:
            return await self._health(service, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
