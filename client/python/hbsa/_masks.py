"""hbsa._masks: the block mask in the three wire forms of proto/hbsa/v1/attention.proto.

Block numbering follows SEMANTICS.md "Blocks": sequence b has ceil(Lq_b / Sq) query blocks and
ceil(Lk_b / Sk) key blocks, numbered globally sequence after sequence. That count is all the
client needs to cut a dense [Hk, Nq, Nk] mask into per-sequence planes or CSR rows; which
elements are allowed is decided by the server alone.
"""
import numpy as np


class CompactMask:
    """CSR over the Hk * Nq rows (row r = hk * Nq + i): the key blocks (global numbering) that
    query block i may attend to for KV head hk. row_offsets: [Hk*Nq + 1] int64, starting at 0,
    non-decreasing; col_indices: [nnz] int32, strictly increasing within a row."""

    def __init__(self, row_offsets, col_indices):
        self.row_offsets = np.ascontiguousarray(np.asarray(row_offsets), dtype=np.int64)
        self.col_indices = np.ascontiguousarray(np.asarray(col_indices), dtype=np.int32)


class PerSequenceMask:
    """One bool/uint8 array per sequence b, shape [Hk, nq_b, nk_b], local block numbering."""

    def __init__(self, sequences):
        self.sequences = [np.asarray(s) for s in sequences]


def block_starts(cu_seqlens, block_size):
    """[B+1] first global block of each sequence (the last entry is the block count)."""
    lengths = np.diff(np.asarray(cu_seqlens, dtype=np.int64))
    counts = (lengths + block_size - 1) // block_size
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def pack_bits(mask):
    """numpy.packbits(bitorder="little") of a bool/0-1 array, flattened in C order."""
    return np.packbits(np.asarray(mask).astype(bool).ravel(), bitorder="little").tobytes()


def _dense_to_compact(dense, qs, ks):
    hk, nq, _ = dense.shape
    # Keep same-sequence blocks only: the others are ignored by the contract.
    seq_of_q = np.searchsorted(qs, np.arange(nq), side="right") - 1
    offsets = [0]
    cols = []
    for h in range(hk):
        for i in range(nq):
            b = seq_of_q[i]
            row = np.nonzero(dense[h, i, ks[b]:ks[b + 1]])[0] + ks[b]
            cols.append(row.astype(np.int32))
            offsets.append(offsets[-1] + len(row))
    col = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    return CompactMask(np.asarray(offsets, np.int64), col)


def _compact_to_dense(m, hk, nq, nk):
    dense = np.zeros((hk, nq, nk), dtype=bool)
    ro, ci = m.row_offsets, m.col_indices
    for r in range(hk * nq):
        dense.reshape(hk * nq, nk)[r, ci[ro[r]:ro[r + 1]]] = True
    return dense


def fill_request_mask(req, block_mask, cu_q, cu_k, q_block_size, k_block_size, hk, form):
    """Writes `block_mask` (dense array, CompactMask or PerSequenceMask) into req in `form`
    ("dense", "per_sequence" or "compact"). Dense input of the wrong shape is sent as is with
    its declared shape, so the server's validation reports it."""
    from .errors import client_error
    if form not in ("dense", "per_sequence", "compact"):
        raise client_error("mask_form must be dense, per_sequence or compact; got %r" % (form,))
    if isinstance(block_mask, CompactMask) and form == "compact":
        req.compact_mask.row_offsets.extend(block_mask.row_offsets.tolist())
        req.compact_mask.col_indices.extend(block_mask.col_indices.tolist())
        return
    if isinstance(block_mask, PerSequenceMask) and form == "per_sequence":
        for plane in block_mask.sequences:
            req.per_sequence_mask.sequences.append(pack_bits(plane))
        return
    qs = block_starts(cu_q, q_block_size)
    ks = block_starts(cu_k, k_block_size)
    nq, nk = int(qs[-1]), int(ks[-1])
    if isinstance(block_mask, CompactMask):
        if len(block_mask.row_offsets) != hk * nq + 1:
            raise client_error("CompactMask.row_offsets must hold Hk*Nq+1 = %d entries; got %d"
                               % (hk * nq + 1, len(block_mask.row_offsets)))
        if block_mask.col_indices.size and (block_mask.col_indices.min() < 0
                                            or block_mask.col_indices.max() >= nk):
            raise client_error("CompactMask.col_indices must lie in [0, Nk = %d)" % nk)
        dense = _compact_to_dense(block_mask, hk, nq, nk)
    elif isinstance(block_mask, PerSequenceMask):
        if len(block_mask.sequences) != len(qs) - 1:
            raise client_error("PerSequenceMask needs one plane per sequence (%d); got %d"
                               % (len(qs) - 1, len(block_mask.sequences)))
        dense = np.zeros((hk, nq, nk), dtype=bool)
        for b, plane in enumerate(block_mask.sequences):
            want = (hk, qs[b + 1] - qs[b], ks[b + 1] - ks[b])
            if tuple(plane.shape) != want:
                raise client_error("PerSequenceMask plane %d must have shape %s; got %s"
                                   % (b, want, tuple(plane.shape)))
            dense[:, qs[b]:qs[b + 1], ks[b]:ks[b + 1]] = plane.astype(bool)
    else:
        dense = np.asarray(block_mask)
        if form == "dense" or dense.shape != (hk, nq, nk):
            if form != "dense":
                raise client_error("block_mask must have shape [Hk, Nq, Nk] = [%d, %d, %d] to be "
                                   "sent as %s; got %s" % (hk, nq, nk, form, list(dense.shape)))
            req.dense_mask.shape.extend(int(s) for s in dense.shape)
            req.dense_mask.bits = pack_bits(dense)
            return
    if form == "dense":
        req.dense_mask.shape.extend([hk, nq, nk])
        req.dense_mask.bits = pack_bits(dense)
    elif form == "per_sequence":
        for b in range(len(qs) - 1):
            req.per_sequence_mask.sequences.append(
                pack_bits(dense[:, qs[b]:qs[b + 1], ks[b]:ks[b + 1]]))
    else:
        m = _dense_to_compact(dense.astype(bool), qs, ks)
        req.compact_mask.row_offsets.extend(m.row_offsets.tolist())
        req.compact_mask.col_indices.extend(m.col_indices.tolist())
