"""hbsa._wire: AttendRequest/AttendResponse bytes built and read around array buffers.

The generated protobuf classes copy every tensor byte into the message (and again when
serialising, and again when parsing the answer). This module writes the protobuf framing of the
tensor fields itself: a request is the small fields serialised by protobuf, then for q, k and v
the Tensor framing followed by the array's own buffer, joined once into the bytes grpcio sends
(the one copy of the tensor data on this side; grpcio requires `bytes`). An answer is read in
place: the tensor fields are located in the received bytes and out/lse come back as views of
them, from which the caller's arrays are filled with one copy. Every other field is parsed by
protobuf, so its semantics stay protobuf's.

Wire format: a field is a varint key (number << 3 | wire type) and a payload: type 0 varint,
1 eight bytes, 2 varint length + bytes, 5 four bytes.
"""
from .errors import client_error


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tensor_field(field, dtype, shape, nbytes):
    """Framing of Tensor{dtype, shape (packed), data key+length} as field `field`; `nbytes`
    bytes of data must follow."""
    packed = b"".join(_varint(int(s)) for s in shape)
    body = b"\x08" + _varint(dtype) + b"\x12" + _varint(len(packed)) + packed
    if nbytes:
        body += b"\x1a" + _varint(nbytes)
    return _varint(field << 3 | 2) + _varint(len(body) + nbytes) + body


def request_bytes(header, tensors):
    """The serialized AttendRequest: `header` (an AttendRequest without q/k/v) and tensors, a
    list of (field, wire dtype, shape, C-contiguous array)."""
    parts = [header.SerializeToString()]
    for field, dtype, shape, arr in tensors:
        view = memoryview(arr).cast("B")
        parts.append(tensor_field(field, dtype, shape, view.nbytes))
        parts.append(view)
    return b"".join(parts)


def _read_varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise client_error("malformed response: truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise client_error("malformed response: varint too long")


def _skip(buf, i, wt):
    if wt == 0:
        return _read_varint(buf, i)[1]
    if wt == 1:
        return i + 8
    if wt == 5:
        return i + 4
    if wt == 2:
        n, i = _read_varint(buf, i)
        return i + n
    raise client_error("malformed response: wire type %d" % wt)


def _tensor(buf, start, end):
    """(dtype, shape, data offset, data length) of a Tensor in buf[start:end]."""
    dtype, shape, off, size = 0, [], start, 0
    i = start
    while i < end:
        key, i = _read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if field == 1 and wt == 0:
            dtype, i = _read_varint(buf, i)
        elif field == 2 and wt == 2:
            n, i = _read_varint(buf, i)
            j = i
            while j < i + n:
                v, j = _read_varint(buf, j)
                shape.append(v)
            i += n
        elif field == 2 and wt == 0:
            v, i = _read_varint(buf, i)
            shape.append(v)
        elif field == 3 and wt == 2:
            size, i = _read_varint(buf, i)
            off = i
            i += size
        else:
            i = _skip(buf, i, wt)
    return dtype, shape, off, size


def split_response(raw):
    """(rest, out, lse) of a serialized AttendResponse: `rest` the other fields' bytes (parse
    with protobuf), out/lse (dtype, shape, offset, length) into `raw`, or None when absent."""
    mv = memoryview(raw)
    rest, found = [], {}
    i = 0
    while i < len(raw):
        key_start = i
        key, i = _read_varint(raw, i)
        field, wt = key >> 3, key & 7
        if field in (2, 3) and wt == 2:
            n, i = _read_varint(raw, i)
            found[field] = _tensor(raw, i, i + n)
            i += n
            continue
        i = _skip(raw, i, wt)
        rest.append(mv[key_start:i])
    if i != len(raw):
        raise client_error("malformed response: truncated field")
    return b"".join(rest), found.get(2), found.get(3)
