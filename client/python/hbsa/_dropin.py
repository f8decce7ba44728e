"""hbsa._dropin: HBSAttention, a drop-in for upstream hbsattn's `HBSAttention` (torch only).

    from hbsa import HBSAttention        # instead of: from hbsattn import HBSAttention
    out = HBSAttention(q, k, v, cu_q_seqlens, cu_k_seqlens, block_mask, 32, 16, True, None)

Same signature as upstream's, positional and keyword: its 19 arguments, the last nine optional
(`tile_mode` and the eight precomputed block tables, which are accepted and ignored: the server
derives the block layout itself). The attention runs on the hbsa server named by $HBSA_TARGET
(default localhost:50051), read at each call; one Client per target is kept for the process.

Checks, in upstream's order and with upstream's exception kinds (each class is also an
hbsa.InvalidArgumentError):
  1. block_mask is a torch.bool tensor                                  AssertionError
  2. block_mask.shape == (nheads_k, num_q_block, num_k_block)           AssertionError
  3. tile_mode is 'auto' or 'fix'                                       ValueError
  4. nheads_q is a multiple of nheads_k                                 AssertionError
then the server validates the rest (dtypes, offsets, head dim, ...): what it refuses raises a
ValueError naming the field and the rule, as does an argument that is not a tensor. Block counts
come from cu_seqlens as upstream's `calculate_blocks` defines them (ceil of each sequence's
length over the block size, summed). Upstream's kernel limits are not imposed: block sizes need
not be multiples of 16 (tile_mode 'auto') or powers of 2 ('fix'); the service computes any
positive sizes. Other failures raise the hbsa.HbsaError subclass of their gRPC code. As upstream,
there is no backward: calling backward() through the result raises NotImplementedError.

torch.compile: the call is the custom operator `hbsa::attention` (torch.library.custom_op) with
a fake implementation (an output shaped like q), so a model calling HBSAttention traces into one
graph (fullgraph=True). Checks 1 and 3-4 run in eager Python; check 2 and the call itself need
the offsets' values, so in a compiled graph they run when the operator runs.
"""
import os
import threading
from typing import Any, Dict, Optional, Sequence, Union

import torch

from ._client import Client
from .errors import (InvalidArgumentAssertionError, InvalidArgumentError,
                     InvalidArgumentValueError)

if not hasattr(torch, "library") or not hasattr(torch.library, "custom_op"):
    raise ImportError("hbsa.HBSAttention needs torch >= 2.4 (torch.library.custom_op); "
                      "found torch %s" % torch.__version__)

__all__ = ["HBSAttention"]

DEFAULT_TARGET = "localhost:50051"
_TILE_MODES = ("auto", "fix")

_clients: Dict[str, Client] = {}
_clients_lock = threading.Lock()


def _client() -> Client:
    target = os.environ.get("HBSA_TARGET") or DEFAULT_TARGET
    with _clients_lock:
        client = _clients.get(target)
        if client is None:
            client = _clients[target] = Client(target)
        return client


def _num_blocks(cu_seqlens: torch.Tensor, block_size: int, name: str) -> int:
    """Blocks of `block_size` rows over every sequence: sum of ceil(length / block_size)."""
    if cu_seqlens.dim() != 1 or cu_seqlens.dtype.is_floating_point or cu_seqlens.is_complex():
        raise InvalidArgumentValueError(
            "%s must be a 1-D integer tensor [B+1]; got %s of shape %s" %
            (name, cu_seqlens.dtype, tuple(cu_seqlens.shape)))
    offsets = cu_seqlens.tolist()
    total = 0
    for i in range(1, len(offsets)):
        length = offsets[i] - offsets[i - 1]
        if length < 0:
            raise InvalidArgumentValueError(
                "%s must be non-decreasing; entry %d (%d) < entry %d (%d)" %
                (name, i, offsets[i], i - 1, offsets[i - 1]))
        total += -(-length // block_size)
    return total


@torch.library.custom_op("hbsa::attention", mutates_args=())
def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q_seqlens: torch.Tensor,
               cu_k_seqlens: torch.Tensor, block_mask: torch.Tensor, q_block_size: int,
               k_block_size: int, causal: bool, softmax_scale: Optional[float],
               tile_mode: str) -> torch.Tensor:
    """The operator's real implementation: checks 2-4 (see the module doc), then the server."""
    for value, name in ((q_block_size, "q_block_size"), (k_block_size, "k_block_size")):
        if value <= 0:
            raise InvalidArgumentValueError("%s must be positive; got %d" % (name, value))
    want = (int(k.shape[1]) if k.dim() >= 2 else -1,
            _num_blocks(cu_q_seqlens, q_block_size, "cu_q_seqlens"),
            _num_blocks(cu_k_seqlens, k_block_size, "cu_k_seqlens"))
    if tuple(block_mask.shape) != want:
        raise InvalidArgumentAssertionError(
            "block_mask must have shape (nheads_k, num_q_block, num_k_block) = %s; got %s" %
            (want, tuple(block_mask.shape)))
    if tile_mode not in _TILE_MODES:
        raise InvalidArgumentValueError("Invalid tile mode: %r (expected 'auto' or 'fix')" %
                                        (tile_mode,))
    if q.dim() >= 2 and want[0] > 0 and q.shape[1] % want[0] != 0:
        raise InvalidArgumentAssertionError(
            "nhead_q must be divisible by nhead_k (for GQA); got %d and %d" %
            (q.shape[1], want[0]))
    try:
        return _client().attend(q, k, v, cu_q_seqlens, cu_k_seqlens, block_mask, q_block_size,
                                k_block_size, causal, softmax_scale)
    except InvalidArgumentError as e:
        if isinstance(e, (ValueError, AssertionError)):
            raise
        raise InvalidArgumentValueError(e.message) from None


@_attention.register_fake
def _attention_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    cu_q_seqlens: torch.Tensor, cu_k_seqlens: torch.Tensor,
                    block_mask: torch.Tensor, q_block_size: int, k_block_size: int, causal: bool,
                    softmax_scale: Optional[float], tile_mode: str) -> torch.Tensor:
    """What the output looks like (for tracing): q's shape, dtype and device, contiguous."""
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def _no_backward(ctx: Any, grad_out: torch.Tensor) -> None:
    raise NotImplementedError("hbsa.HBSAttention does not support gradient propagation "
                              "(forward only, as upstream hbsattn)")


_attention.register_autograd(_no_backward, setup_context=lambda ctx, inputs, output: None)


def _offsets(x: Union[torch.Tensor, Sequence[int]], name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x, dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidArgumentValueError("%s must be a 1-D integer tensor [B+1]; got %s" %
                                        (name, type(x).__name__)) from None


def HBSAttention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 cu_q_seqlens: Union[torch.Tensor, Sequence[int]],
                 cu_k_seqlens: Union[torch.Tensor, Sequence[int]],
                 block_mask: torch.Tensor, q_block_size: int, k_block_size: int, causal: bool,
                 softmax_scale: Optional[float], tile_mode: str = "auto",
                 num_q_block: Optional[int] = None, cu_q_block: Optional[torch.Tensor] = None,
                 q_block_to_batch: Optional[torch.Tensor] = None,
                 cu_num_q_block: Optional[torch.Tensor] = None,
                 num_k_block: Optional[int] = None, cu_k_block: Optional[torch.Tensor] = None,
                 k_block_to_batch: Optional[torch.Tensor] = None,
                 cu_num_k_block: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Block-sparse attention on the hbsa server, with upstream hbsattn's signature.

    q [total_q, nheads_q, D], k and v [total_k, nheads_k, D]: torch float16, bfloat16 or float32
    tensors on any device. cu_q_seqlens / cu_k_seqlens [B+1]: sequence offsets. block_mask
    [nheads_k, num_q_block, num_k_block] torch.bool. softmax_scale None = 1/sqrt(D). tile_mode
    and the block tables after it: accepted and ignored (tile_mode must still be 'auto' or
    'fix'). Returns out [total_q, nheads_q, D], q's dtype, on q's device. Raises as the module
    doc says."""
    del num_q_block, cu_q_block, q_block_to_batch, cu_num_q_block  # ignored, as documented
    del num_k_block, cu_k_block, k_block_to_batch, cu_num_k_block
    for value, name in ((q, "q"), (k, "k"), (v, "v")):
        if not isinstance(value, torch.Tensor):
            raise InvalidArgumentValueError("%s must be a torch.Tensor; got %s" %
                                            (name, type(value).__name__))
    if not isinstance(block_mask, torch.Tensor) or block_mask.dtype != torch.bool:
        found = block_mask.dtype if isinstance(block_mask, torch.Tensor) else type(block_mask)
        raise InvalidArgumentAssertionError(
            "block_mask must be a boolean tensor (torch.bool); got %s" % (found,))
    return _attention(q, k, v, _offsets(cu_q_seqlens, "cu_q_seqlens"),
                      _offsets(cu_k_seqlens, "cu_k_seqlens"), block_mask, int(q_block_size),
                      int(k_block_size), bool(causal),
                      None if softmax_scale is None else float(softmax_scale), str(tile_mode))
