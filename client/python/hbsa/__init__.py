"""hbsa: Python client of the hbsa heterogeneous block-sparse attention service.

    import hbsa
    client = hbsa.Client("localhost:50051")
    out = client.attend(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, 32, 16, causal=True)

Same argument order as upstream hbsattn's HBSAttention. client.open_session(...) gives a
Session of server-resident K/V (decode steps send only their new tokens; hbsa/_session.py). hbsa.HBSAttention is the exact drop-in
for it (torch >= 2.4, server from $HBSA_TARGET; hbsa/_dropin.py): it is imported on first use,
so `import hbsa` needs no torch. Errors are hbsa.HbsaError subclasses carrying the gRPC code and
message.
"""
from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING, Any

from ._client import AsyncClient, Client, build_request
from ._masks import CompactMask, PerSequenceMask
from ._session import Session, SessionRouter, route_hash
from ._stream import StreamResult
from .errors import (CancelledError, DeadlineExceededError, HbsaError, InternalError,
                     InvalidArgumentAssertionError, InvalidArgumentError,
                     InvalidArgumentValueError, NotFoundError, ResourceExhaustedError,
                     UnauthenticatedError, UnavailableError, UnimplementedError)

if TYPE_CHECKING:
    from ._dropin import HBSAttention

# HBSAttention is left out of __all__ so that `from hbsa import *` does not import torch.
__all__ = [
    "AsyncClient", "Client", "build_request", "CompactMask", "PerSequenceMask", "Session",
    "SessionRouter", "route_hash", "NotFoundError", "StreamResult",
    "HbsaError", "InvalidArgumentError", "InvalidArgumentValueError",
    "InvalidArgumentAssertionError", "UnimplementedError", "ResourceExhaustedError",
    "DeadlineExceededError", "CancelledError", "UnavailableError", "InternalError",
    "UnauthenticatedError",
]


def __getattr__(name: str) -> Any:
    if name == "HBSAttention":  # needs torch: imported on first use
        from ._dropin import HBSAttention
        return HBSAttention
    raise AttributeError("module 'hbsa' has no attribute %r" % name)

try:
    __version__ = _version("hbsa")  # the repository's VERSION, recorded when it was installed
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
