"""Dependency-free decoder of pprof profiles (google/pprof profile.proto).

For test drivers: load a gzip (or raw) pprof file or bytes and look at the
samples as Python objects.

    import pprof
    p = pprof.load("cpu.pb.gz")
    p.samples[0].stack      # [Frame(function, file, line, module), ...] LEAF FIRST
    p.samples[0].values     # one int per sample type, e.g. [samples, nanoseconds]
    p.sample_types          # [("samples", "count"), ("cpu", "nanoseconds")]
    p.self_by_function()    # {function: value of sample type 0 where it is the leaf}
    p.total_by_function()   # {function: value where it is anywhere on the stack}
"""
import collections
import gzip

Frame = collections.namedtuple("Frame", "function file line module")


class Sample:
    def __init__(self, stack, values, labels):
        self.stack = stack
        self.values = values
        self.labels = labels

    def __repr__(self):
        return "Sample(%s, %s)" % ([f.function for f in self.stack], self.values)


class Profile:
    def __init__(self):
        self.samples = []
        self.sample_types = []
        self.mappings = []   # dicts: id, start, limit, offset, filename, build_id
        self.period = 0
        self.period_type = None
        self.time_nanos = 0
        self.duration_nanos = 0
        self.comments = []

    def self_by_function(self, index=0):
        out = collections.Counter()
        for s in self.samples:
            if s.stack:
                out[s.stack[0].function] += s.values[index]
        return out

    def total_by_function(self, index=0):
        out = collections.Counter()
        for s in self.samples:
            for fn in set(f.function for f in s.stack):
                out[fn] += s.values[index]
        return out

    def total(self, index=0):
        return sum(s.values[index] for s in self.samples)


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yields (field_number, wire_type, value) of one message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _varint(buf, pos)
        elif wire == 1:
            v = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            v = bytes(buf[pos:pos + n])
            pos += n
        elif wire == 5:
            v = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, v


def _ints(wire, v):
    if wire == 2:  # packed
        out, pos = [], 0
        while pos < len(v):
            x, pos = _varint(v, pos)
            out.append(x)
        return out
    return [v]


def _signed(x):
    return x - (1 << 64) if x >= (1 << 63) else x


def load(src):
    """Parses a pprof profile from a path or bytes (gzip or not)."""
    data = src
    if isinstance(src, str):
        with open(src, "rb") as f:
            data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)

    strings, raw_samples, functions, locations = [], [], {}, {}
    raw_types, period_type = [], None
    p = Profile()
    for field, wire, v in _fields(data):
        if field == 1:
            d = dict((f, x) for f, _, x in _fields(v))
            raw_types.append((d.get(1, 0), d.get(2, 0)))
        elif field == 2:
            locs, vals, labels = [], [], []
            for f, w, x in _fields(v):
                if f == 1:
                    locs += _ints(w, x)
                elif f == 2:
                    vals += [_signed(i) for i in _ints(w, x)]
                elif f == 3:
                    labels.append(dict((lf, lx) for lf, _, lx in _fields(x)))
            raw_samples.append((locs, vals, labels))
        elif field == 3:
            d = dict((f, x) for f, _, x in _fields(v))
            p.mappings.append(d)
        elif field == 4:
            loc = {"id": 0, "mapping": 0, "address": 0, "lines": []}
            for f, w, x in _fields(v):
                if f == 1:
                    loc["id"] = x
                elif f == 2:
                    loc["mapping"] = x
                elif f == 3:
                    loc["address"] = x
                elif f == 4:
                    ld = dict((lf, lx) for lf, _, lx in _fields(x))
                    loc["lines"].append((ld.get(1, 0), _signed(ld.get(2, 0))))
            locations[loc["id"]] = loc
        elif field == 5:
            d = dict((f, x) for f, _, x in _fields(v))
            functions[d.get(1, 0)] = d
        elif field == 6:
            strings.append(v.decode("utf-8", "replace"))
        elif field == 9:
            p.time_nanos = v
        elif field == 10:
            p.duration_nanos = v
        elif field == 11:
            d = dict((f, x) for f, _, x in _fields(v))
            period_type = (d.get(1, 0), d.get(2, 0))
        elif field == 12:
            p.period = _signed(v)
        elif field == 13:
            p.comments += _ints(wire, v)

    if not strings or strings[0] != "":
        raise ValueError("string_table[0] must be empty")
    s = lambda i: strings[i]
    p.sample_types = [(s(t), s(u)) for t, u in raw_types]
    if period_type:
        p.period_type = (s(period_type[0]), s(period_type[1]))
    p.comments = [s(i) for i in p.comments]
    mappings = {}
    for d in p.mappings:
        mappings[d.get(1, 0)] = d
        d["filename"] = s(d.get(5, 0))
        d["build_id"] = s(d.get(6, 0))
    for locs, vals, labels in raw_samples:
        if len(vals) != len(p.sample_types):
            raise ValueError("sample has %d values for %d types" % (len(vals), len(p.sample_types)))
        stack = []
        for lid in locs:
            loc = locations[lid]  # KeyError: unknown location id
            module = mappings[loc["mapping"]]["filename"] if loc["mapping"] else ""
            for fid, line in loc["lines"]:  # inlined callee first
                fn = functions[fid]
                stack.append(Frame(s(fn.get(2, 0)), s(fn.get(4, 0)), line, module))
        lab = {s(l.get(1, 0)): (s(l[2]) if 2 in l else l.get(3)) for l in labels}
        p.samples.append(Sample(stack, vals, lab))
    return p
