"""The one reader of the containers a Keras model file is made of (zip archives, HDF5, JSON), as data only.

A model file from the internet is untrusted input. Every path that opens one (`summary`, `import`) reads
it through this module, which never lets a file point elsewhere and never allocates what a header claims
before checking the claim:

- zip: a member is read only after its declared size is checked against a limit, and reading stops
  as soon as the actual bytes pass it (a 3 MB archive can inflate to gigabytes); encrypted members,
  compression methods Python cannot read and symlink entries are refused, a bad CRC is one sentence.
  Nothing is ever extracted to disk.
- HDF5: links are followed one by one, hard links and soft links inside the file only (an external
  link opens another file; a dangling or looping soft link is refused); a dataset is read only when it
  keeps its bytes in this file (no external storage, no virtual dataset), holds floating-point numbers,
  and declares a size within the caller's limit and, unfiltered, within the file's own size.
- JSON: its nesting is measured before parsing (`json` has no depth limit of its own, and a config
  nested 100,000 deep would exhaust the recursion of whatever walks it).
"""

from __future__ import annotations

import io
import json
import lzma
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..checks import cut, quote
from ..errors import UserError
from ..i18n import _

MAX_JSON_BYTES = 32 * 2**20  # a Keras config is kilobytes; the course's largest is under 100 KB
MAX_JSON_DEPTH = 100  # a Keras 3 Functional config nests about 12 levels
MAX_LINK_HOPS = 32  # soft links followed to find one object: more is a loop
_READ_CHUNK = 2**20
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
# What zipfile raises on damaged data (a CRC mismatch is BadZipFile); the decompressors add their own.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
)
# What h5py raises on a damaged file: OSError mostly, RuntimeError from link and B-tree checks, the others
# from values it cannot convert.
_HDF5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, UnicodeError)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = np.frombuffer(b"[{]}", np.uint8)


# ---------------------------------------------------------------- JSON


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it.

    Strings are cut out first (one regex pass), then the brackets' running sum is taken with numpy:
    hand-written because `json` offers no depth limit, and a Python loop over megabytes is slow."""
    skeleton = np.frombuffer(_STRING.sub(b"", data), np.uint8)
    brackets = skeleton[np.isin(skeleton, _BRACKETS)]
    if not len(brackets):
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def parse_json(data: bytes | str, where: str) -> Any:
    """A JSON text of at most MAX_JSON_BYTES and MAX_JSON_DEPTH levels; NaN and Infinity are left to the field checks."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_JSON_BYTES:
        raise UserError(
            _("{where} is {size:,} bytes of JSON; a Keras model's config is at most {limit:,}.").format(
                where=where, size=len(raw), limit=MAX_JSON_BYTES
            )
        )
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise UserError(
            _("{where} nests {depth:,} levels deep; a Keras model's config nests at most {limit}.").format(
                where=where, depth=depth, limit=MAX_JSON_DEPTH
            )
        )
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(
            _("{where} is not UTF-8 text (byte {offset} cannot be decoded).").format(where=where, offset=exc.start)
        ) from None
    except (ValueError, RecursionError) as exc:
        raise UserError(
            _("{where} is not valid JSON ({problem}).").format(where=where, problem=cut(str(exc), 120))
        ) from None


# ---------------------------------------------------------------- zip


@contextmanager
def open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    """The archive at `path`, its central directory read; a damaged one is a UserError."""
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise UserError(
            _("{path} cannot be read as a zip archive ({problem}).").format(path=path, problem=cut(str(exc), 120))
        ) from None
    with archive:
        yield archive


def read_member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """The bytes of member `name`, at most `limit` of them, checked before and while reading."""
    info = archive.getinfo(name)
    where = f"{path}: {name}"
    if info.flag_bits & 0x1:
        raise UserError(_("{where} is encrypted; a Keras archive's members are plain.").format(where=where))
    if info.compress_type not in _COMPRESSIONS:
        raise UserError(
            _(
                "{where} uses compression method {method}, which cannot be read (stored, deflate, bzip2 and lzma can)."
            ).format(where=where, method=info.compress_type)
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UserError(_("{where} is a symbolic link, not a file; it is not followed.").format(where=where))
    if info.file_size > limit:
        raise UserError(
            _("{where} declares {size:,} bytes uncompressed, over the limit of {limit:,} for it.").format(
                where=where, size=info.file_size, limit=limit
            )
        )
    out = io.BytesIO()
    try:
        with archive.open(info) as member:
            while chunk := member.read(_READ_CHUNK):
                out.write(chunk)
                if out.tell() > limit:  # a header that lies about the size
                    raise UserError(
                        _("{where} inflates past {limit:,} bytes, more than it declares ({size:,}).").format(
                            where=where, limit=limit, size=info.file_size
                        )
                    )
    except UserError:  # a ValueError too: keep its own sentence
        raise
    except (*_ZIP_ERRORS, zlib.error, lzma.LZMAError) as exc:
        raise UserError(_("{where} is damaged ({problem}).").format(where=where, problem=cut(str(exc), 120))) from None
    return out.getvalue()


# ---------------------------------------------------------------- HDF5


@contextmanager
def open_hdf5(source: Path | io.BytesIO, where: str) -> Iterator[h5py.File]:
    """An HDF5 file opened read-only; a truncated or damaged one is a UserError."""
    try:
        f = h5py.File(source, "r")
    except _HDF5_ERRORS as exc:
        raise UserError(
            _("{where} cannot be read as HDF5; the file is truncated or damaged ({problem}).").format(
                where=where, problem=cut(str(exc), 120)
            )
        ) from None
    with f:
        try:
            yield f
        except UserError:
            raise
        except _HDF5_ERRORS as exc:  # the HDF5 library meets the damage at whatever call touches it first
            raise UserError(
                _("{where} cannot be read as HDF5; the file is truncated or damaged ({problem}).").format(
                    where=where, problem=cut(str(exc), 120)
                )
            ) from None


def file_size(f: h5py.File) -> int:
    """The bytes the HDF5 file holds, which bounds what an unfiltered dataset can keep in it."""
    return int(f.id.get_filesize())


def child(group: h5py.Group, name: str, where: str, hops: int = 0) -> h5py.Group | h5py.Dataset | None:
    """`group[name]` (a path of one or more parts) following only links inside the file; None if absent.

    An external link would open another file, so it is refused; a soft link is resolved part by part,
    refused when it dangles or loops."""
    current: Any = group
    parts = [p for p in name.split("/") if p]
    if name.startswith("/"):
        current = group.file
    for part in parts:
        if not isinstance(current, h5py.Group):
            return None
        try:
            link = current.get(part, getlink=True)
        except _HDF5_ERRORS:
            link = None
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise UserError(
                _(
                    "{where}: '{name}' is an external link to {target!r}; a model file may not point at other files."
                ).format(where=where, name=_join(current, part), target=cut(f"{link.filename}:{link.path}", 80))
            )
        if isinstance(link, h5py.SoftLink):
            if hops >= MAX_LINK_HOPS:
                raise UserError(
                    _("{where}: the soft link '{name}' loops (more than {hops} links in a row).").format(
                        where=where, name=_join(current, part), hops=MAX_LINK_HOPS
                    )
                )
            target = child(current, str(link.path), where, hops + 1)
            if target is None:
                raise UserError(
                    _("{where}: the soft link '{name}' points at {target!r}, which the file does not hold.").format(
                        where=where, name=_join(current, part), target=cut(str(link.path), 80)
                    )
                )
            current = target
        else:
            try:
                current = current[part]
            except _HDF5_ERRORS as exc:
                raise UserError(
                    _("{where}: '{name}' cannot be read ({problem}).").format(
                        where=where, name=_join(current, part), problem=cut(str(exc), 80)
                    )
                ) from None
    return current


def _join(group: h5py.Group, part: str) -> str:
    base = group.name or ""
    return f"{base.rstrip('/')}/{part}"


def names(group: h5py.Group, where: str) -> list[str]:
    """The link names in a group (nothing resolved), each UTF-8."""
    try:
        return [str(n) for n in group]
    except _HDF5_ERRORS as exc:
        raise UserError(
            _("{where}: the names in '{group}' cannot be read ({problem}).").format(
                where=where, group=group.name, problem=cut(str(exc), 80)
            )
        ) from None


def read_array(dataset: Any, where: str, max_values: int) -> np.ndarray:
    """A float dataset's values, read only after every claim about them is checked.

    `where` names the dataset in the sentence ("model.keras: layer 'conv2d' (Conv2D) kernel")."""
    if dataset is None:
        raise UserError(_("{where} is missing from the file.").format(where=where))
    if not isinstance(dataset, h5py.Dataset):
        raise UserError(_("{where} is a group, not an array of weights.").format(where=where))
    if dataset.is_virtual:
        raise UserError(
            _("{where} is a virtual dataset that maps other files; a model file may not.").format(where=where)
        )
    if dataset.external:
        raise UserError(
            _("{where} keeps its bytes in another file ({target}); a model file may not.").format(
                where=where, target=cut(", ".join(str(e[0]) for e in dataset.external), 80)
            )
        )
    dtype = dataset.dtype
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise UserError(
            _("{where} holds {dtype} values, not floating-point numbers.").format(where=where, dtype=_dtype_name(dtype))
        )
    shape = tuple(int(s) for s in dataset.shape or ())
    if dataset.shape is None or not shape:
        raise UserError(_("{where} is a single number, not an array of weights.").format(where=where))
    count = int(np.prod(shape, dtype=object))
    if count > max_values:
        raise UserError(
            _("{where} declares shape {shape} ({count:,} values), more than the {limit:,} the layer has.").format(
                where=where, shape=shape, count=count, limit=max_values
            )
        )
    size = file_size(dataset.file)
    if not _filters(dataset) and count * dtype.itemsize > size:
        raise UserError(
            _(
                "{where} declares {nbytes:,} bytes but the whole file holds {size:,}; the file is truncated or damaged."
            ).format(where=where, nbytes=count * dtype.itemsize, size=size)
        )
    try:
        return np.asarray(dataset[()], dtype=np.float32)
    except _HDF5_ERRORS as exc:
        raise UserError(
            _("{where} cannot be read; the file is truncated or damaged ({problem}).").format(
                where=where, problem=cut(str(exc), 80)
            )
        ) from None


def _filters(dataset: h5py.Dataset) -> bool:
    try:
        return bool(dataset.id.get_create_plist().get_nfilters())
    except _HDF5_ERRORS:
        return True


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.names:
        return _("compound")
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in ("S", "U", "O"):
        return _("text")
    return str(dtype)


def text_attr(obj: h5py.HLObject, name: str, where: str, limit: int = MAX_JSON_BYTES) -> str | None:
    """A text attribute (one string), or None when absent; its size is checked before it is read."""
    values = _attr(obj, name, where, limit)
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        if values.size != 1:
            raise UserError(_("{where}: attribute '{name}' is not a single text.").format(where=where, name=name))
        values = values.reshape(-1)[0]
    return _text(values, name, where)


def text_list_attr(obj: h5py.HLObject, name: str, where: str, limit: int = MAX_JSON_BYTES) -> list[str] | None:
    """A list-of-texts attribute (Keras' weight_names), or None when absent."""
    values = _attr(obj, name, where, limit)
    if values is None:
        return None
    items = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else [values]
    return [_text(v, name, where) for v in items]


def _attr(obj: h5py.HLObject, name: str, where: str, limit: int) -> Any:
    try:
        if name not in obj.attrs:
            return None
        attr = obj.attrs.get_id(name)
        if attr.get_storage_size() > limit:
            raise UserError(
                _("{where}: attribute '{name}' takes {size:,} bytes, over the limit of {limit:,}.").format(
                    where=where, name=name, size=attr.get_storage_size(), limit=limit
                )
            )
        return obj.attrs[name]
    except UserError:
        raise
    except UnicodeDecodeError:
        raise UserError(_("{where}: attribute '{name}' is not UTF-8 text.").format(where=where, name=name)) from None
    except _HDF5_ERRORS as exc:
        raise UserError(
            _("{where}: attribute '{name}' cannot be read ({problem}).").format(
                where=where, name=name, problem=cut(str(exc), 80)
            )
        ) from None


def _text(value: Any, name: str, where: str) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                _("{where}: attribute '{name}' is not UTF-8 text.").format(where=where, name=name)
            ) from None
    if isinstance(value, str):
        return value
    raise UserError(
        _("{where}: attribute '{name}' should be text, got {value}.").format(where=where, name=name, value=quote(value))
    )
