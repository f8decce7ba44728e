"""hbsa._stream: the bookkeeping of Client.attend_stream and AsyncClient.attend_stream.

One AttendStream call carries many requests; the server answers each once, in any order, with
the request's request_id, and a request it refuses is answered with `error` instead of outputs
(proto/hbsa/v1/attention.proto). StreamState turns the caller's items into request bytes,
remembers what each request in flight needs to read its answer, and turns answers (or local
refusals) into StreamResult values. The loops that drive the call live in hbsa._client.
"""
from collections.abc import Mapping

from . import _wire
from .errors import HbsaError, InternalError, client_error, from_status
from .v1 import attention_pb2

_MAX_REQUEST_ID_BYTES = 256  # the server refuses longer ids and cannot echo them


class StreamResult:
    """One answer of attend_stream.

    index: position of its request among the items given. request_id: the request's id.
    value: what Client.attend returns (out, or (out, lse) with return_lse=True), None on error.
    error: the HbsaError of this request alone (the server refused or failed it, or the client
    could not encode it), None on success. response: the AttendResponse without tensor data
    (timings, backend, device, kernel), None when the client refused the request itself."""

    __slots__ = ("index", "request_id", "value", "error", "response")

    def __init__(self, index, request_id, value=None, error=None, response=None):
        self.index = index
        self.request_id = request_id
        self.value = value
        self.error = error
        self.response = response

    @property
    def ok(self):
        return self.error is None

    def result(self):
        """value, or raises error."""
        if self.error is not None:
            raise self.error
        return self.value

    def __repr__(self):
        state = "ok" if self.error is None else str(self.error)
        return "StreamResult(index=%d, request_id=%r, %s)" % (self.index, self.request_id, state)


class _Pending:
    __slots__ = ("index", "req", "name", "like", "out", "lse_out")

    def __init__(self, index, req, name, like, out, lse_out):
        self.index, self.req, self.name, self.like = index, req, name, like
        self.out, self.lse_out = out, lse_out


class StreamState:
    """Requests in flight on one stream, by request_id."""

    def __init__(self, client, unpack):
        self._client = client
        self._unpack = unpack  # hbsa._client._unpack_raw
        self.in_flight = {}
        self._next_index = 0

    def add(self, item):
        """(request bytes, None) to send, or (None, StreamResult) for a request refused here.
        `item` is a tuple of Client.attend's positional arguments or a mapping of its keywords
        (out= and lse_out= included; no timeout: the stream has one deadline)."""
        index = self._next_index
        self._next_index += 1
        if isinstance(item, Mapping):
            args, kwargs = (), dict(item)
        elif isinstance(item, (tuple, list)):
            args, kwargs = tuple(item), {}
        else:
            raise TypeError("attend_stream items are tuples of attend's arguments or dicts of "
                            "its keywords; got %s" % type(item).__name__)
        if "timeout" in kwargs:
            raise TypeError("a streamed request has no timeout of its own; give attend_stream "
                            "timeout= for the whole stream")
        like = args[0] if args else kwargs.get("q")
        request_id = kwargs.get("request_id", "")
        try:
            if len(str(request_id).encode()) > _MAX_REQUEST_ID_BYTES:
                raise client_error("request_id must be at most %d bytes" % _MAX_REQUEST_ID_BYTES)
            raw, req, name, _, out, lse_out = self._client._request(args, kwargs)
            if req.request_id in self.in_flight:
                raise client_error("request_id %r is already in flight on this stream"
                                   % req.request_id)
        except HbsaError as e:
            return None, StreamResult(index, str(request_id), error=e)
        self.in_flight[req.request_id] = _Pending(index, req, name, like, out, lse_out)
        return raw, None

    def answer(self, raw):
        """The StreamResult of one received AttendResponse (bytes)."""
        rest, _, _ = _wire.split_response(raw)
        meta = attention_pb2.AttendResponse.FromString(rest)
        p = self.in_flight.pop(meta.request_id, None)
        if p is None:
            raise client_error("malformed stream: an answer for request_id %r, which is not in "
                               "flight" % meta.request_id)
        if meta.HasField("error") and meta.error.code != 0:
            return StreamResult(p.index, meta.request_id, response=meta,
                                error=from_status(meta.error.code, meta.error.message))
        value, response = self._unpack(raw, p.req, p.name, p.like, p.req.return_lse, p.out,
                                       p.lse_out)
        return StreamResult(p.index, meta.request_id, value=value, response=response)

    def unanswered(self):
        return len(self.in_flight)


def check_window(max_in_flight):
    if not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise client_error("max_in_flight must be an int >= 1; got %r" % (max_in_flight,))


def stream_ended_early(n):
    return InternalError("the stream ended with %d requests unanswered" % n)
