from hbsa.v1 import attention_pb2 as _attention_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpenSessionRequest(_message.Message):
    __slots__ = ("dtype", "num_heads_k", "head_dim", "capacity_tokens", "ttl_seconds")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_K_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    dtype: _attention_pb2.DType
    num_heads_k: int
    head_dim: int
    capacity_tokens: int
    ttl_seconds: float
    def __init__(self, dtype: _Optional[_Union[_attention_pb2.DType, str]] = ..., num_heads_k: _Optional[int] = ..., head_dim: _Optional[int] = ..., capacity_tokens: _Optional[int] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "device", "page_tokens", "page_bytes", "ttl_seconds", "reserved_tokens")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    device: int
    page_tokens: int
    page_bytes: int
    ttl_seconds: float
    reserved_tokens: int
    def __init__(self, session_id: _Optional[str] = ..., device: _Optional[int] = ..., page_tokens: _Optional[int] = ..., page_bytes: _Optional[int] = ..., ttl_seconds: _Optional[float] = ..., reserved_tokens: _Optional[int] = ...) -> None: ...

class SessionRows(_message.Message):
    __slots__ = ("sequence_ids", "k", "v", "cu_seqlens")
    SEQUENCE_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    V_FIELD_NUMBER: _ClassVar[int]
    CU_SEQLENS_FIELD_NUMBER: _ClassVar[int]
    sequence_ids: _containers.RepeatedScalarFieldContainer[str]
    k: _attention_pb2.Tensor
    v: _attention_pb2.Tensor
    cu_seqlens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequence_ids: _Optional[_Iterable[str]] = ..., k: _Optional[_Union[_attention_pb2.Tensor, _Mapping]] = ..., v: _Optional[_Union[_attention_pb2.Tensor, _Mapping]] = ..., cu_seqlens: _Optional[_Iterable[int]] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("session_id", "rows")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    rows: SessionRows
    def __init__(self, session_id: _Optional[str] = ..., rows: _Optional[_Union[SessionRows, _Mapping]] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("sequence_lengths", "session_tokens")
    SEQUENCE_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    sequence_lengths: _containers.RepeatedScalarFieldContainer[int]
    session_tokens: int
    def __init__(self, sequence_lengths: _Optional[_Iterable[int]] = ..., session_tokens: _Optional[int] = ...) -> None: ...

class AttendSessionRequest(_message.Message):
    __slots__ = ("session_id", "request_id", "sequence_ids", "q", "cu_seqlens_q", "append", "q_block_size", "k_block_size", "causal", "softmax_scale", "return_lse", "allow_tf32", "dense_mask", "per_sequence_mask", "compact_mask")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_IDS_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    CU_SEQLENS_Q_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    Q_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    K_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CAUSAL_FIELD_NUMBER: _ClassVar[int]
    SOFTMAX_SCALE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LSE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TF32_FIELD_NUMBER: _ClassVar[int]
    DENSE_MASK_FIELD_NUMBER: _ClassVar[int]
    PER_SEQUENCE_MASK_FIELD_NUMBER: _ClassVar[int]
    COMPACT_MASK_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    request_id: str
    sequence_ids: _containers.RepeatedScalarFieldContainer[str]
    q: _attention_pb2.Tensor
    cu_seqlens_q: _containers.RepeatedScalarFieldContainer[int]
    append: SessionRows
    q_block_size: int
    k_block_size: int
    causal: bool
    softmax_scale: float
    return_lse: bool
    allow_tf32: bool
    dense_mask: _attention_pb2.DenseBlockMask
    per_sequence_mask: _attention_pb2.PerSequenceBlockMask
    compact_mask: _attention_pb2.CompactBlockMask
    def __init__(self, session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., sequence_ids: _Optional[_Iterable[str]] = ..., q: _Optional[_Union[_attention_pb2.Tensor, _Mapping]] = ..., cu_seqlens_q: _Optional[_Iterable[int]] = ..., append: _Optional[_Union[SessionRows, _Mapping]] = ..., q_block_size: _Optional[int] = ..., k_block_size: _Optional[int] = ..., causal: bool = ..., softmax_scale: _Optional[float] = ..., return_lse: bool = ..., allow_tf32: bool = ..., dense_mask: _Optional[_Union[_attention_pb2.DenseBlockMask, _Mapping]] = ..., per_sequence_mask: _Optional[_Union[_attention_pb2.PerSequenceBlockMask, _Mapping]] = ..., compact_mask: _Optional[_Union[_attention_pb2.CompactBlockMask, _Mapping]] = ...) -> None: ...

class AttendSessionResponse(_message.Message):
    __slots__ = ("attention", "sequence_lengths")
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    attention: _attention_pb2.AttendResponse
    sequence_lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, attention: _Optional[_Union[_attention_pb2.AttendResponse, _Mapping]] = ..., sequence_lengths: _Optional[_Iterable[int]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("freed_bytes",)
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    freed_bytes: int
    def __init__(self, freed_bytes: _Optional[int] = ...) -> None: ...
