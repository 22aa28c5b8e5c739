"""Limits on what a container file may inflate to, checked from its directory before anything is
inflated: the zip directory of a ``.keras`` or ``.npz``, the dataset headers of an HDF5 file (a zip
of zeros compresses about 1000:1; an HDF5 dataset can declare gigabytes and store nothing, and the
readers allocate what is declared).

The defaults fit real models and data; the ratio applies only to members over 256 MiB.
``SLIMDEPLOY_ARCHIVE_LIMITS`` overrides them, e.g. ``member=64G,total=128G`` (keys ``member``,
``total``, ``ratio``, ``members``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from slimdeploy.errors import UserError
from slimdeploy.formatting import fmt_bytes

ENV_VAR = "SLIMDEPLOY_ARCHIVE_LIMITS"
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    member_bytes: int = 16 * GIB  # one member (or HDF5 dataset) inflated
    total_bytes: int = 32 * GIB  # all members together
    # Inflated/stored above which a member is refused, checked over ``ratio_floor`` bytes only (real data
    # can compress far more than weights; a small member costs little whatever its ratio).
    ratio: float = 200.0
    ratio_floor: int = 256 * MIB
    members: int = 10_000  # a .keras holds 3 or a few assets, an .npz 4 to 6 arrays

    @classmethod
    def from_env(cls) -> ArchiveLimits:
        text = os.environ.get(ENV_VAR, "").strip()
        keys = {"member": "member_bytes", "total": "total_bytes", "ratio": "ratio", "members": "members"}
        values = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, raw = item.partition("=")
            value = _parse_limit(raw.strip(), as_size=key.strip() in ("member", "total"))
            if key.strip() not in keys or value is None:
                raise UserError(f"${ENV_VAR}: expected comma-separated KEY=VALUE with KEY one of "
                                f"{', '.join(keys)} and VALUE a positive number (sizes may end in K, M, G or T), "
                                f"got {item!r}")
            values[keys[key.strip()]] = int(value) if key.strip() == "members" else value
        return dataclasses.replace(cls(), **values)


def _parse_limit(raw: str, as_size: bool) -> float | None:
    """``64G`` -> 64 GiB for a size, ``500`` for a ratio or count; None when not a positive number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", raw, re.IGNORECASE) if as_size else \
        re.fullmatch(r"(\d+(?:\.\d+)?)()", raw)
    if not match or float(match.group(1)) <= 0:
        return None
    scale = 1 << (10 * " KMGT".index(match.group(2).upper() or " "))
    return int(float(match.group(1)) * scale) if as_size else float(match.group(1))


# --- zip (.keras, .npz) -------------------------------------------------------------------------

# The end-of-central-directory records (APPNOTE 4.3.16, 4.3.14, 4.3.15).
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
# The smallest central directory entry (APPNOTE 4.3.12): N bytes of directory hold at most N / 46 members.
_CENTRAL_HEADER_SIZE = 46
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # the local file header before each member's data (APPNOTE 4.3.7)


def _declared_directory(path: Path) -> tuple[int, int] | None:
    """(member count, central directory bytes) the zip's end record declares; None: not a zip. A zip64
    field whose zip64 record cannot be read stays 0xFFFF(FFFF), which the limits refuse."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        tail_start = max(0, size - (_EOCD.size + 0xFFFF))  # the record, then a comment of up to 64 KiB
        handle.seek(tail_start)
        tail = handle.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + _EOCD.size > len(tail):
            return None
        fields = _EOCD.unpack_from(tail, at)
        count, directory_bytes = fields[4], fields[5]
        locator_at = at - _ZIP64_LOCATOR.size
        if (count == 0xFFFF or directory_bytes == 0xFFFFFFFF) and locator_at >= 0 \
                and tail[locator_at:locator_at + 4] == b"PK\x06\x07":
            handle.seek(_ZIP64_LOCATOR.unpack_from(tail, locator_at)[2])
            record = handle.read(_ZIP64_EOCD.size)
            if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
                count, directory_bytes = _ZIP64_EOCD.unpack(record)[7:9]
    return count, directory_bytes


def check_zip_members(path: str | os.PathLike, what: str, limits: ArchiveLimits | None = None,
                      error: type[UserError] = UserError) -> list[zipfile.ZipInfo]:
    """Refuse (``error``: ``{what} {path} refused: …``) a zip whose directory names a member that would land
    outside its directory, a name twice, too many members, or members that would inflate beyond the
    limits; returns the members. Reads the directory only."""
    path = Path(path)
    limits = limits or ArchiveLimits.from_env()
    refused = f"{what} {path} refused:"
    # zipfile parses the whole central directory: its declared count and size are checked first.
    declared = _declared_directory(path)
    if declared is not None:
        count, directory_bytes = declared
        if max(count, directory_bytes // _CENTRAL_HEADER_SIZE) > limits.members:
            shown = f"{count:,} archive members" if count > limits.members else \
                f"a zip directory of {directory_bytes:,} bytes, room for {directory_bytes // _CENTRAL_HEADER_SIZE:,} " \
                "archive members"
            raise error(f"{refused} it declares {shown}, more than the {limits.members:,} allowed "
                        f"({_raises('members', 'N')})")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise error(f"{what} {path} is corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    if len(members) > limits.members:
        raise error(f"{refused} it holds {len(members):,} archive members, more than the {limits.members:,} "
                    f"allowed ({_raises('members', 'N')})")
    seen = set()
    for info in members:
        if is_escaping_member(info.filename):
            raise error(f"{refused} archive member {info.filename!r} would be written outside its directory")
        if info.filename in seen:  # readers disagree on which copy they read
            raise error(f"{refused} archive member {info.filename!r} appears twice")
        seen.add(info.filename)
    _check_sizes(refused, [(m.filename, m.file_size, m.compress_size) for m in members], limits,
                 "archive member", error, stored_at_most=path.stat().st_size)
    return members


class StoredMemberWindow(io.RawIOBase):
    """A seekable, read-only view of a stored zip member's bytes in the archive file (``ZipFile.open``
    re-reads a member from its start on every backward seek: h5py's many seeks would take minutes)."""

    def __init__(self, handle, info: zipfile.ZipInfo):
        super().__init__()
        handle.seek(info.header_offset)  # its name and extra lengths may differ from the directory's
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for member {info.filename!r}")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[9:11]
        self._handle = handle
        self._start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        self._length = info.compress_size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._length - self._position))  # never past the member
        if count == 0:
            return 0
        self._handle.seek(self._start + self._position)
        view = memoryview(buffer).cast("B")
        got = self._handle.readinto(view[:count])
        self._position += got
        return got


def is_escaping_member(name: str) -> bool:
    """A member named ``../x``, ``/x`` or ``C:x`` would be written outside wherever it is unpacked."""
    normalized = name.replace("\\", "/")
    return normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in normalized.split("/")


def _raises(key: str, value: str) -> str:  # how a user whose file is real gets past a limit
    return f"{ENV_VAR}={key}={value} raises the limit"


_TOO_COMPRESSED = "a decompression bomb or data that is almost all zeros"


def _check_sizes(refused: str, entries: list[tuple[str, int, int]], limits: ArchiveLimits, kind: str,
                 error: type[UserError], stored_at_most: int | None = None) -> None:
    """``entries``: (name, declared inflated bytes, bytes stored) per member."""
    total = stored_total = 0
    for name, inflated, stored in entries:
        total += inflated
        stored_total += stored
        if inflated > limits.member_bytes:
            raise error(f"{refused} {kind} {name!r} would inflate to {fmt_bytes(inflated)}, more than the "
                        f"{fmt_bytes(limits.member_bytes)} allowed per member ({_raises('member', 'SIZE')})")
        if inflated > limits.ratio_floor and inflated > limits.ratio * stored:
            ratio = f"{inflated / stored:,.0f}:1" if stored else "nothing stored"
            raise error(f"{refused} {kind} {name!r} would inflate to {fmt_bytes(inflated)} from {fmt_bytes(stored)} stored "
                        f"({ratio}, above the {limits.ratio:g}:1 allowed for {kind}s over "
                        f"{fmt_bytes(limits.ratio_floor)}: {_TOO_COMPRESSED}; {_raises('ratio', 'N')})")
        if total > limits.total_bytes:
            raise error(f"{refused} its members would inflate to more than the {fmt_bytes(limits.total_bytes)} "
                        f"allowed in all, reached at {kind} {name!r} ({_raises('total', 'SIZE')})")
        if stored_at_most is not None and stored_total > stored_at_most:
            raise error(f"{refused} {kind} {name!r} declares more stored bytes than the file holds "
                        f"({fmt_bytes(stored_total)} > {fmt_bytes(stored_at_most)}): a forged or corrupt zip directory")
    # Many members each under the floor can still add up to a bomb.
    if total > limits.ratio_floor and total > limits.ratio * stored_total:
        largest = max(entries, key=lambda entry: entry[1])[0]
        raise error(f"{refused} its members would inflate to {fmt_bytes(total)} from {fmt_bytes(stored_total)} stored "
                    f"(more than the {limits.ratio:g}:1 allowed over {fmt_bytes(limits.ratio_floor)}; the largest is "
                    f"{kind} {largest!r}: {_TOO_COMPRESSED}; {_raises('ratio', 'N')})")


# --- HDF5 (legacy .h5 models, the weights inside a .keras) -------------------------------------

def check_h5_datasets(h5file, path: str | os.PathLike, what: str, limits: ArchiveLimits | None = None,
                      error: type[UserError] = UserError) -> None:
    """Refuse an open ``h5py.File`` whose datasets would read data from elsewhere (a link, an external or
    virtual dataset) or declare more than the limits. Reads metadata only."""
    import h5py  # lazy: heavy

    limits = limits or ArchiveLimits.from_env()
    refused = f"{what} {path} refused:"
    links = []
    h5file.visititems_links(lambda name, link: links.append(name) if isinstance(
        link, (h5py.SoftLink, h5py.ExternalLink)) else None)
    if links:
        raise error(f"{refused} HDF5 entry {links[0]!r} is a link, which could read data from elsewhere")
    entries = []

    def visit(name, item):
        if not isinstance(item, h5py.Dataset):
            return
        if item.external or item.is_virtual:
            raise error(f"{refused} HDF5 dataset {name!r} keeps its data in other files")
        declared = math.prod(item.shape or ()) * item.dtype.itemsize if item.shape is not None else 0
        entries.append((name, declared, item.id.get_storage_size()))

    h5file.visititems(visit)
    _check_sizes(refused, entries, limits, "HDF5 dataset", error)
