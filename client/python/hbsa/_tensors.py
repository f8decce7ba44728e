"""hbsa._tensors: NumPy arrays and torch tensors <-> raw little-endian bytes with a wire dtype.

Accepted element types: float16, float32, and bfloat16 either as a torch.bfloat16 tensor or as
raw uint16 bit patterns (NumPy has no bfloat16) with dtype="bf16". Results come back as the
caller's kind: torch in -> torch out (same device as q), NumPy in -> NumPy out (uint16 for bf16).
"""
import numpy as np

from .errors import client_error

# Wire enum values (hbsa.v1.DType) by short name.
WIRE = {"fp16": 1, "bf16": 2, "fp32": 3}
_ALIASES = {"float16": "fp16", "half": "fp16", "fp16": "fp16", "bfloat16": "bf16", "bf16": "bf16",
            "float32": "fp32", "float": "fp32", "fp32": "fp32"}
_NP = {"fp16": np.float16, "bf16": np.uint16, "fp32": np.float32}
NP = _NP


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def is_torch(x):
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


def canonical_dtype(name):
    if name is None:
        return None
    key = str(name).replace("torch.", "").lower()
    if key not in _ALIASES:
        raise client_error("dtype must be fp16, bf16 or fp32; got %r" % (name,))
    return _ALIASES[key]


def tensor_dtype(x, requested):
    """The wire dtype name of q/k/v `x`, checking it against `requested` (may be None)."""
    requested = canonical_dtype(requested)
    if is_torch(x):
        torch = _torch()
        found = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}.get(x.dtype)
        if found is None:
            raise client_error("torch tensors must be float16, bfloat16 or float32; got %s" % x.dtype)
    else:
        dt = np.asarray(x).dtype
        if dt == np.float16:
            found = "fp16"
        elif dt == np.float32:
            found = "fp32"
        elif dt == np.uint16:
            if requested != "bf16":
                raise client_error("uint16 arrays are bf16 bit patterns: pass dtype='bf16'")
            found = "bf16"
        else:
            raise client_error("arrays must be float16, float32 or uint16 (bf16 bits); got %s" % dt)
    if requested is not None and requested != found:
        raise client_error("dtype=%r does not match the data (%s)" % (requested, found))
    return found


def to_numpy(x):
    """A C-contiguous little-endian NumPy view/copy of x (torch bf16 -> uint16 bits)."""
    if is_torch(x):
        torch = _torch()
        t = x.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        if t.dtype == torch.bool:
            return t.numpy()
        return t.numpy()
    a = np.asarray(x)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a)


def int32_list(x, name):
    a = to_numpy(x)
    if a.ndim != 1:
        raise client_error("%s must be 1-D [B+1]; got shape %s" % (name, list(a.shape)))
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise client_error("%s entries must fit int32" % name)
    return a.astype(np.int64).tolist()


def from_wire(data, shape, dtype_name, like):
    """Bytes -> array of the caller's kind (`like` is q)."""
    a = np.frombuffer(data, dtype=np.dtype(_NP[dtype_name]).newbyteorder("<")).reshape(shape)
    if is_torch(like):
        torch = _torch()
        if dtype_name == "bf16":  # via int16: same bits, a dtype every torch version has
            t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a.copy())
        return t.to(like.device)
    return a.copy()


def lse_from_wire(data, shape, like):
    a = np.frombuffer(data, dtype="<f4").reshape(shape).copy()
    if is_torch(like):
        return _torch().from_numpy(a).to(like.device)
    return a


def into_caller(view, out, like):
    """One copy of `view` (a read-only array over received bytes) into caller memory: into
    `out` when given (a NumPy array of view's shape and dtype, returned), else a new array of
    the caller's kind (torch, on q's device, for torch callers)."""
    if out is not None:
        dst = np.asarray(out)
        if dst.shape != view.shape or dst.dtype.itemsize != view.dtype.itemsize or \
                dst.dtype.kind != view.dtype.kind:
            raise client_error("out buffer must be %s %s; got %s %s"
                               % (view.dtype, list(view.shape), dst.dtype, list(dst.shape)))
        np.copyto(dst, view, casting="no")
        return out
    if is_torch(like):
        torch = _torch()
        if view.dtype == np.uint16:  # bf16 bits
            t = torch.from_numpy(view.view(np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(view.copy())
        return t.to(like.device)
    return view.copy()
