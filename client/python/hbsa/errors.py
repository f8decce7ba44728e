"""hbsa.errors: typed exceptions carrying the gRPC status code and the server's message.

Every failed call raises an HbsaError subclass chosen by the status code; `code` is the
grpc.StatusCode and `message` the text (which names the offending field for INVALID_ARGUMENT).
Problems found before sending (an argument the client cannot encode) raise InvalidArgumentError
with a message starting "client:".
"""
import grpc


class HbsaError(Exception):
    """Base class. Attributes: code (grpc.StatusCode), message (str)."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        return "%s: %s" % (self.code.name, self.message)


class InvalidArgumentError(HbsaError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidArgumentValueError(InvalidArgumentError, ValueError):
    """An invalid argument that the drop-in hbsa.HBSAttention reports as a ValueError, where
    upstream hbsattn raises ValueError (tile_mode) and for every argument the server refuses."""


class InvalidArgumentAssertionError(InvalidArgumentError, AssertionError):
    """An invalid argument that the drop-in hbsa.HBSAttention reports as an AssertionError,
    where upstream hbsattn asserts (block_mask's dtype and shape, nheads_q % nheads_k)."""


class UnimplementedError(HbsaError):
    code = grpc.StatusCode.UNIMPLEMENTED


class ResourceExhaustedError(HbsaError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(HbsaError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(HbsaError):
    code = grpc.StatusCode.CANCELLED


class UnavailableError(HbsaError):
    code = grpc.StatusCode.UNAVAILABLE


class NotFoundError(HbsaError):
    """A session is gone (closed, evicted by TTL or LRU, or its server restarted: the message
    says which), or a sequence the session does not hold. Open a new session."""
    code = grpc.StatusCode.NOT_FOUND


class InternalError(HbsaError):
    code = grpc.StatusCode.INTERNAL


class UnauthenticatedError(HbsaError):
    """No valid bearer token (the server's --auth-token-file), or a token on a plaintext channel."""
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgumentError, UnimplementedError, ResourceExhaustedError, DeadlineExceededError,
    CancelledError, UnavailableError, InternalError, UnauthenticatedError, NotFoundError)}


def from_rpc_error(err):
    """The HbsaError for a grpc.RpcError (or grpc.aio.AioRpcError)."""
    return from_code(err.code(), err.details() or "")


def from_code(code, message):
    """The HbsaError for a grpc.StatusCode and its message."""
    return _BY_CODE.get(code, HbsaError)(message, code=code)


def from_status(code, message):
    """The HbsaError for a status carried inside a message (AttendResponse.error of a streamed
    request: the numeric gRPC code and the server's message)."""
    status = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(status, HbsaError)(message, code=status)


def client_error(message):
    return InvalidArgumentError("client: " + message)
