"""The header of a .npy array, read and checked before any of its data is: shared by ``run`` (.npy
inputs) and ``train`` (the members of an .npz).

numpy's own loader treats a file without the .npy magic as a pickle (so a text file or /dev/zero
was reported as "holds Python objects") and trusts the shape a header declares (so 10^12 values
was a MemoryError). Here the magic, the version, the header's syntax, the dtype and the declared
size against the real size of the file are checked first, each failure one line.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

MAX_HEADER = 10_000  # numpy's own default bound on a header's length
OBJECTS = "holds Python objects: loading them means unpickling, and cnnspec never unpickles"


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header declares, checked: dtype, shape, and where the data starts."""

    dtype: object
    shape: tuple
    offset: int

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def read_header(fh, size: int, where: str) -> NpyHeader:
    """The header of the .npy data ``fh`` is at the start of (``size`` bytes in all): refused in one
    line naming ``where`` if it is no .npy, declares Python objects, or declares more or less data
    than there is."""
    from numpy.lib import format as npy

    # version 3.0 has 2.0's layout (its header is UTF-8, which only structured dtypes use)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0, (3, 0): npy.read_array_header_2_0}
    try:
        version = npy.read_magic(fh)
        reader = readers.get(version)
        if reader is None:
            raise InputError(f"{where}: not a .npy array (unknown .npy version {version[0]}.{version[1]})")
        shape, _fortran, dtype = reader(fh, max_header_size=MAX_HEADER)
        offset = fh.tell()
    except InputError:
        raise
    except (ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        magic = "magic string" in str(exc) or isinstance(exc, EOFError)
        raise InputError(f"{where}: not a .npy array ({'no .npy header' if magic else 'malformed .npy header'})") from None
    if dtype.hasobject:
        raise InputError(f"{where}: {OBJECTS}")
    header = NpyHeader(dtype, tuple(int(d) for d in shape), offset)
    if header.nbytes != size - offset:
        more = "more" if size - offset > header.nbytes else "less"
        raise InputError(f"{where}: the .npy header declares {list(header.shape)} {dtype} ({header.nbytes:,} bytes) "
                         f"but the file holds {more} ({size - offset:,} bytes); truncated or not a .npy array")
    return header
