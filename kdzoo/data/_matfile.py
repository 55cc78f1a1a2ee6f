"""A small reader for MATLAB level-5 MAT-files (numeric arrays only), so SVHN needs no scipy.

Follows the published MAT-file format (MathWorks, "MAT-File Format", level 5):
a 128-byte header, then tagged data elements; ``miCOMPRESSED`` elements hold a
zlib stream of one element; ``miMATRIX`` elements hold array flags,
dimensions, a name and the real part, stored column-major and possibly in a
smaller integer type than the array's class.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

MI_INT8, MI_UINT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 2, 5, 6, 14, 15
MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
# mxClass -> numpy dtype for numeric arrays (6 double, 7 single, 8..15 integer types)
MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}


class MatFileError(ValueError):
    pass


def _elements(buf: memoryview, endian: str):
    """Yield (type, payload) for each data element in ``buf``."""
    pos, end = 0, len(buf)
    while pos + 8 <= end:
        first, second = struct.unpack_from(endian + "II", buf, pos)
        if first >> 16:  # small data element: type and size share one word, payload in the next 4 bytes
            mtype, size = first & 0xFFFF, first >> 16
            if size > 4:
                raise MatFileError(f"bad small data element of {size} bytes")
            yield mtype, buf[pos + 4:pos + 4 + size]
            pos += 8
            continue
        mtype, size = first, second
        start = pos + 8
        if start + size > end:
            raise MatFileError("file is truncated")
        yield mtype, buf[start:start + size]
        pos = start + size
        if mtype != MI_COMPRESSED:
            pos += (-size) % 8  # uncompressed elements are padded to 8 bytes


def _matrix(payload: memoryview, endian: str) -> tuple[str, np.ndarray | None]:
    parts = list(_elements(payload, endian))
    if len(parts) < 3:
        return "", None  # an empty array
    flags = struct.unpack_from(endian + "I", parts[0][1])[0]
    mx_class, complex_ = flags & 0xFF, bool(flags & 0x0800)
    dims = np.frombuffer(parts[1][1], dtype=endian + "i4")
    name = bytes(parts[2][1]).decode("latin1")
    if mx_class not in MX_DTYPES or complex_ or len(parts) < 4:
        return name, None  # cells, structs, chars, sparse and complex arrays are not needed here
    mtype, data = parts[3]
    if mtype not in MI_DTYPES:
        raise MatFileError(f"variable '{name}' stores data of unknown type {mtype}")
    values = np.frombuffer(data, dtype=endian + MI_DTYPES[mtype])
    if values.size != int(np.prod(dims)):
        raise MatFileError(f"variable '{name}' has {values.size} values for dimensions {tuple(dims)}")
    return name, values.astype(MX_DTYPES[mx_class], copy=False).reshape(tuple(dims), order="F")


def load_mat(path: str | Path, names: set[str] | None = None) -> dict[str, np.ndarray]:
    """Numeric arrays of a level-5 MAT-file, by variable name (``names`` restricts which are decoded)."""
    data = Path(path).read_bytes()
    if len(data) < 128:
        raise MatFileError(f"{path} is too short for a MAT-file")
    if data[:19] == b"MATLAB 7.3 MAT-file":
        raise MatFileError(f"{path} is a MATLAB 7.3 (HDF5) file; only level-5 MAT-files are supported")
    indicator = data[126:128]
    if indicator not in (b"IM", b"MI"):
        raise MatFileError(f"{path} is not a level-5 MAT-file (no endian indicator)")
    endian = "<" if indicator == b"IM" else ">"
    out: dict[str, np.ndarray] = {}
    for mtype, payload in _elements(memoryview(data)[128:], endian):
        if mtype == MI_COMPRESSED:
            inner = memoryview(zlib.decompress(payload))
            elems = list(_elements(inner, endian))
            if not elems:
                continue
            mtype, payload = elems[0]
        if mtype != MI_MATRIX:
            continue
        name, array = _matrix(payload, endian)
        if array is not None and (names is None or name in names):
            out[name] = array
    return out
