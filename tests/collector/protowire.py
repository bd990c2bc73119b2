"""A tiny protobuf wire-format encoder/decoder for tests (no dependencies).

    encode([(1, "str"), (3, 123), (6, ("double", 15.0)), (2, b"raw"), (4, [(1, 2)])])
    msg = decode(data)   # {field: [values]}; length-delimited values stay bytes
"""
import struct


def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(fields):
    out = bytearray()
    for num, value in fields:
        if isinstance(value, bool) or isinstance(value, int):
            out += _varint(num << 3 | 0) + _varint(int(value))
        elif isinstance(value, tuple) and value[0] == "double":
            out += _varint(num << 3 | 1) + struct.pack("<d", value[1])
        elif isinstance(value, (str, bytes, list)):
            data = (value.encode() if isinstance(value, str) else
                    encode(value) if isinstance(value, list) else value)
            out += _varint(num << 3 | 2) + _varint(len(data)) + data
        else:
            raise TypeError(value)
    return bytes(out)


def _read_varint(data, pos):
    shift = result = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def decode(data):
    msg = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _read_varint(data, pos)
        elif wt == 1:
            v = struct.unpack("<d", data[pos:pos + 8])[0]
            pos += 8
        elif wt == 2:
            n, pos = _read_varint(data, pos)
            v = data[pos:pos + n]
            pos += n
        elif wt == 5:
            v = struct.unpack("<f", data[pos:pos + 4])[0]
            pos += 4
        else:
            raise ValueError("wire type %d" % wt)
        msg.setdefault(num, []).append(v)
    return msg


def packed_int64(v):
    """Values of a repeated int64 field (packed bytes or unpacked ints)."""
    out = []
    for item in v:
        if isinstance(item, int):
            out.append(item)
            continue
        pos = 0
        while pos < len(item):
            x, pos = _read_varint(item, pos)
            out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def strings(msg, num):
    return [b.decode() for b in msg.get(num, [])]
