"""Zip archives that weights come in (``torch.save`` files, ``.keras`` files), read as hostile input:
nothing is extracted to disk, and an entry that is a link, climbs out of the archive (``../x``,
``/etc/x``), appears twice or inflates past a limit is refused before it is used."""
from __future__ import annotations

import stat
import zipfile

from ..errors import InputError

ZIP_MAGIC = b"PK\x03\x04"
DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
          RuntimeError)


def damaged(path, exc) -> InputError:
    detail = (str(exc).splitlines() or [""])[0][:100] or type(exc).__name__
    return InputError(f"{path}: a damaged zip archive ({detail})")


def open_zip(path) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """The archive and its entries by name, every name checked."""
    try:
        archive = zipfile.ZipFile(path)
    except DAMAGE as exc:
        raise damaged(path, exc) from None
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InputError(f"{path}: the archive holds a symbolic link '{name}'; refused")
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise InputError(f"{path}: the archive holds an entry named '{name}', outside the archive; refused")
        if name in entries:
            raise InputError(f"{path}: the archive holds '{name}' twice; refused")
        entries[name] = info
    return archive, entries


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path, limit: int, stored_only: bool = False) -> bytes:
    """An entry's bytes, at most ``limit`` of them whatever the header declares (a compressed entry
    is inflated only that far)."""
    if stored_only and info.compress_type != zipfile.ZIP_STORED:
        raise InputError(f"{path}: entry '{info.filename}' is compressed, which this format never is; refused")
    if info.file_size > limit:
        raise InputError(f"{path}: entry '{info.filename}' declares {info.file_size} bytes, more than the "
                         f"{limit} cnnspec reads")
    try:
        with archive.open(info) as fh:
            data = fh.read(limit + 1)
    except DAMAGE as exc:
        raise damaged(path, exc) from None
    if len(data) > limit:
        raise InputError(f"{path}: entry '{info.filename}' inflates past {limit} bytes; refused")
    return data
