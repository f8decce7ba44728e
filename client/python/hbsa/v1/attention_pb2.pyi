from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_BFLOAT16: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT16: DType
DTYPE_BFLOAT16: DType
DTYPE_FLOAT32: DType

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "shm")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    shm: SharedMemoryRef
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., shm: _Optional[_Union[SharedMemoryRef, _Mapping]] = ...) -> None: ...

class SharedMemoryRef(_message.Message):
    __slots__ = ("region", "offset", "byte_size")
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    region: str
    offset: int
    byte_size: int
    def __init__(self, region: _Optional[str] = ..., offset: _Optional[int] = ..., byte_size: _Optional[int] = ...) -> None: ...

class DenseBlockMask(_message.Message):
    __slots__ = ("shape", "bits")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    bits: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., bits: _Optional[bytes] = ...) -> None: ...

class PerSequenceBlockMask(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sequences: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CompactBlockMask(_message.Message):
    __slots__ = ("row_offsets", "col_indices")
    ROW_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    COL_INDICES_FIELD_NUMBER: _ClassVar[int]
    row_offsets: _containers.RepeatedScalarFieldContainer[int]
    col_indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, row_offsets: _Optional[_Iterable[int]] = ..., col_indices: _Optional[_Iterable[int]] = ...) -> None: ...

class AttendRequest(_message.Message):
    __slots__ = ("request_id", "q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "q_block_size", "k_block_size", "causal", "softmax_scale", "return_lse", "allow_tf32", "dense_mask", "per_sequence_mask", "compact_mask", "out_shm", "lse_shm")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    V_FIELD_NUMBER: _ClassVar[int]
    CU_SEQLENS_Q_FIELD_NUMBER: _ClassVar[int]
    CU_SEQLENS_K_FIELD_NUMBER: _ClassVar[int]
    Q_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    K_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CAUSAL_FIELD_NUMBER: _ClassVar[int]
    SOFTMAX_SCALE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LSE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TF32_FIELD_NUMBER: _ClassVar[int]
    DENSE_MASK_FIELD_NUMBER: _ClassVar[int]
    PER_SEQUENCE_MASK_FIELD_NUMBER: _ClassVar[int]
    COMPACT_MASK_FIELD_NUMBER: _ClassVar[int]
    OUT_SHM_FIELD_NUMBER: _ClassVar[int]
    LSE_SHM_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    q: Tensor
    k: Tensor
    v: Tensor
    cu_seqlens_q: _containers.RepeatedScalarFieldContainer[int]
    cu_seqlens_k: _containers.RepeatedScalarFieldContainer[int]
    q_block_size: int
    k_block_size: int
    causal: bool
    softmax_scale: float
    return_lse: bool
    allow_tf32: bool
    dense_mask: DenseBlockMask
    per_sequence_mask: PerSequenceBlockMask
    compact_mask: CompactBlockMask
    out_shm: SharedMemoryRef
    lse_shm: SharedMemoryRef
    def __init__(self, request_id: _Optional[str] = ..., q: _Optional[_Union[Tensor, _Mapping]] = ..., k: _Optional[_Union[Tensor, _Mapping]] = ..., v: _Optional[_Union[Tensor, _Mapping]] = ..., cu_seqlens_q: _Optional[_Iterable[int]] = ..., cu_seqlens_k: _Optional[_Iterable[int]] = ..., q_block_size: _Optional[int] = ..., k_block_size: _Optional[int] = ..., causal: bool = ..., softmax_scale: _Optional[float] = ..., return_lse: bool = ..., allow_tf32: bool = ..., dense_mask: _Optional[_Union[DenseBlockMask, _Mapping]] = ..., per_sequence_mask: _Optional[_Union[PerSequenceBlockMask, _Mapping]] = ..., compact_mask: _Optional[_Union[CompactBlockMask, _Mapping]] = ..., out_shm: _Optional[_Union[SharedMemoryRef, _Mapping]] = ..., lse_shm: _Optional[_Union[SharedMemoryRef, _Mapping]] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("queue_seconds", "host_to_device_seconds", "kernel_seconds", "device_to_host_seconds", "total_seconds", "parse_seconds", "staging_seconds", "response_seconds", "batch_size")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOST_TO_DEVICE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TO_HOST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STAGING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    host_to_device_seconds: float
    kernel_seconds: float
    device_to_host_seconds: float
    total_seconds: float
    parse_seconds: float
    staging_seconds: float
    response_seconds: float
    batch_size: int
    def __init__(self, queue_seconds: _Optional[float] = ..., host_to_device_seconds: _Optional[float] = ..., kernel_seconds: _Optional[float] = ..., device_to_host_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ..., parse_seconds: _Optional[float] = ..., staging_seconds: _Optional[float] = ..., response_seconds: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class AttendResponse(_message.Message):
    __slots__ = ("request_id", "out", "lse", "timings", "backend", "device", "error", "kernel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUT_FIELD_NUMBER: _ClassVar[int]
    LSE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    out: Tensor
    lse: Tensor
    timings: StageTimings
    backend: str
    device: int
    error: Error
    kernel: str
    def __init__(self, request_id: _Optional[str] = ..., out: _Optional[_Union[Tensor, _Mapping]] = ..., lse: _Optional[_Union[Tensor, _Mapping]] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., backend: _Optional[str] = ..., device: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., kernel: _Optional[str] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegisterSharedMemoryRequest(_message.Message):
    __slots__ = ("name", "key", "offset", "byte_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    offset: int
    byte_size: int
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ..., offset: _Optional[int] = ..., byte_size: _Optional[int] = ...) -> None: ...

class RegisterSharedMemoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnregisterSharedMemoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnregisterSharedMemoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Device(_message.Message):
    __slots__ = ("index", "name", "total_memory_bytes", "compute_capability", "streams", "kernels")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    total_memory_bytes: int
    compute_capability: str
    streams: int
    kernels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., total_memory_bytes: _Optional[int] = ..., compute_capability: _Optional[str] = ..., streams: _Optional[int] = ..., kernels: _Optional[_Iterable[str]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "max_queue_length", "memory_budget_bytes", "max_head_dim", "max_heads", "max_block_size")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_HEADS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_queue_length: int
    memory_budget_bytes: int
    max_head_dim: int
    max_heads: int
    max_block_size: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_queue_length: _Optional[int] = ..., memory_budget_bytes: _Optional[int] = ..., max_head_dim: _Optional[int] = ..., max_heads: _Optional[int] = ..., max_block_size: _Optional[int] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("server_version", "backend", "compiled_backends", "devices", "fast_head_dims", "dtypes", "mask_formats", "limits")
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    COMPILED_BACKENDS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    FAST_HEAD_DIMS_FIELD_NUMBER: _ClassVar[int]
    DTYPES_FIELD_NUMBER: _ClassVar[int]
    MASK_FORMATS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    backend: str
    compiled_backends: _containers.RepeatedScalarFieldContainer[str]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    fast_head_dims: _containers.RepeatedScalarFieldContainer[int]
    dtypes: _containers.RepeatedScalarFieldContainer[DType]
    mask_formats: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    def __init__(self, server_version: _Optional[str] = ..., backend: _Optional[str] = ..., compiled_backends: _Optional[_Iterable[str]] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., fast_head_dims: _Optional[_Iterable[int]] = ..., dtypes: _Optional[_Iterable[_Union[DType, str]]] = ..., mask_formats: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...
