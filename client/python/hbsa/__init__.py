"""hbsa: Python client of the hbsa heterogeneous block-sparse attention service.

    import hbsa
    client = hbsa.Client("localhost:50051")
    out = client.attend(q, k, v, cu_seqlens_q, cu_seqlens_k, block_mask, 32, 16, causal=True)

Same argument order as upstream hbsattn's HBSAttention (also provided: hbsa.HBSAttention, using
$HBSA_TARGET). Errors are hbsa.HbsaError subclasses carrying the gRPC code and message.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from ._client import AsyncClient, Client, HBSAttention, build_request
from ._masks import CompactMask, PerSequenceMask
from .errors import (CancelledError, DeadlineExceededError, HbsaError, InternalError,
                     InvalidArgumentError, ResourceExhaustedError, UnauthenticatedError,
                     UnavailableError, UnimplementedError)

__all__ = [
    "AsyncClient", "Client", "HBSAttention", "build_request", "CompactMask", "PerSequenceMask",
    "HbsaError", "InvalidArgumentError", "UnimplementedError", "ResourceExhaustedError",
    "DeadlineExceededError", "CancelledError", "UnavailableError", "InternalError",
    "UnauthenticatedError",
]
try:
    __version__ = _version("hbsa")  # the repository's VERSION, recorded when it was installed
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
