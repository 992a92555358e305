"""Download a catalogue file once into the cache: streamed, resumed, verified, moved into place atomically.

The cache is `$CONVSCOPE_DATA_DIR`, else `$XDG_CACHE_HOME/convscope`, else `~/.cache/convscope`, one
folder per dataset (`mnist/train-images-idx3-ubyte.gz`). A file is streamed to `<name>.part` beside its
final place, with HTTP range requests to continue after a cut connection, checked against its size and
published SHA-256, and only then renamed into place, so a reader never sees half a file. Every failure
(no network, a refused connection, a timeout, an HTTP error, a short body, a wrong checksum) is one
sentence naming the dataset, the URL and the path where the file may be placed by hand, and removes the
partial file; only Ctrl-C keeps it, so that the next run continues where it stopped.
`CONVSCOPE_DATA_MIRROR=https://host/path/` fetches `<mirror><dataset>/<file>` instead of the publishers'
URLs: a copy of a cache folder served by any web server is a mirror.

Written on the standard library's `urllib` rather than a download library, because none of those at hand
resumes with range requests while reporting each failure in its own words.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .._version import __version__
from ..errors import UserError
from ..i18n import _
from ..paths import cache_root
from .catalog import CatalogEntry, RemoteFile

CHUNK = 1 << 20  # bytes per read: large enough that the progress bar costs nothing, small enough to stay live
DEFAULT_TIMEOUT = 15.0  # seconds without a byte before a source counts as unreachable
RETRIES = 5  # further range requests after a connection that broke while bytes were still arriving


@dataclass(frozen=True)
class CacheSettings:
    """Where named datasets live and how they are fetched (`from_env` reads the environment once)."""

    root: Path
    mirror: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    progress: bool | None = None  # None: a progress bar when stderr is a terminal
    log: TextIO | None = None  # where one-line notes go; None: stderr

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CacheSettings:
        env = os.environ if env is None else env
        timeout = env.get("CONVSCOPE_DATA_TIMEOUT", "")
        try:
            seconds = float(timeout) if timeout else DEFAULT_TIMEOUT
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise UserError(
                _("CONVSCOPE_DATA_TIMEOUT is {value!r}; it must be a number of seconds above 0.").format(value=timeout)
            )
        return cls(data_dir(env), env.get("CONVSCOPE_DATA_MIRROR") or None, seconds)

    def note(self, text: str) -> None:
        print(text, file=self.log or sys.stderr, flush=True)


def data_dir(env: Mapping[str, str]) -> Path:
    if env.get("CONVSCOPE_DATA_DIR"):
        return Path(env["CONVSCOPE_DATA_DIR"]).expanduser()
    return cache_root(env)


def place(settings: CacheSettings, entry: CatalogEntry, file: RemoteFile) -> Path:
    """Where `file` lives in the cache, and where a user may put it by hand."""
    return settings.root / entry.name / file.name


def urls(settings: CacheSettings, entry: CatalogEntry, file: RemoteFile) -> tuple[str, ...]:
    if settings.mirror:
        return (f"{settings.mirror.rstrip('/')}/{entry.name}/{file.name}",)
    return file.urls


@contextmanager
def dataset_lock(settings: CacheSettings, entry: CatalogEntry) -> Iterator[None]:
    """One process at a time downloads or converts a dataset; the others wait, then find it done."""
    from filelock import FileLock, Timeout

    folder = settings.root / entry.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            _(
                "{dataset}: cannot create the cache folder {path} ({reason}); set CONVSCOPE_DATA_DIR to a writable folder."
            ).format(dataset=entry.name, path=folder, reason=exc.strerror or exc)
        ) from None
    lock = FileLock(str(folder / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        settings.note(
            _("{dataset}: waiting for another process that is downloading it into {path}.").format(
                dataset=entry.name, path=folder
            )
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def check(path: Path, file: RemoteFile) -> str | None:
    """What is wrong with `path` as a copy of `file` (its size, then its SHA-256), or None when it is right."""
    size = path.stat().st_size
    if size != file.size:
        return _("it holds {size:,} bytes, not the published {expected:,}").format(size=size, expected=file.size)
    if file.sha256 is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != file.sha256.lower():
        return _("its SHA-256 is {actual}, not the published {expected}").format(
            actual=digest.hexdigest(), expected=file.sha256
        )
    return None


def fetch(settings: CacheSettings, entry: CatalogEntry, file: RemoteFile) -> Path:
    """The verified cached copy of `file`: the one already there (placed by hand or downloaded), else a download.

    Call it holding `dataset_lock`.
    """
    final = place(settings, entry, file)
    if final.exists():
        problem = check(final, file)
        if problem is not None:
            raise UserError(
                _(
                    "{dataset}: {path} is not the published file: {problem}; replace it with the file from {url} "
                    "or delete it to download again."
                ).format(dataset=entry.name, path=final, problem=problem, url=urls(settings, entry, file)[0])
            )
        return final
    part = final.with_name(final.name + ".part")
    try:
        url = _download(settings, entry, file, part, final)
        problem = check(part, file)
        if problem is not None:
            raise UserError(
                _(
                    "{dataset}: the file downloaded from {url} was refused and deleted: {problem}; download it on "
                    "a machine you trust and place it at {path}."
                ).format(dataset=entry.name, url=url, problem=problem, path=final)
            )
        os.replace(part, final)
    except KeyboardInterrupt:
        raise  # the partial file stays: the next run continues it with a range request
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return final


class _Failed(Exception):
    """One source could not deliver; `reason` is a phrase for the message, `resumable` whether to try again."""

    def __init__(self, reason: str, resumable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.resumable = reason, resumable


def _download(settings: CacheSettings, entry: CatalogEntry, file: RemoteFile, part: Path, final: Path) -> str:
    """Stream `file` into `part` from the first source that delivers it whole; returns that source's URL."""
    from tqdm import tqdm

    sources = urls(settings, entry, file)
    announced: set[str] = set()

    def announce(url: str) -> None:
        """Said once a source answers, so that a failure stays the only line printed."""
        if url not in announced:
            announced.add(url)
            with tqdm.external_write_mode(file=settings.log or sys.stderr):  # above the bar, not inside it
                settings.note(
                    _("{dataset}: downloading {name} ({size:.1f} MB) from {url} into {folder}").format(
                        dataset=entry.name, name=file.name, size=file.size / 1e6, url=url, folder=final.parent
                    )
                )

    failure: tuple[str, str] | None = None
    with tqdm(
        total=file.size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=file.name,
        file=settings.log or sys.stderr,
        disable=None if settings.progress is None else not settings.progress,
        leave=True,  # the last state stays: size, rate and time of the download
    ) as bar:
        for url in sources:
            retries = RETRIES
            while True:
                before = _size(part)
                bar.reset(total=file.size)
                bar.update(before)
                try:
                    _stream(url, part, file, settings.timeout, bar, announce)
                    return url
                except _Failed as exc:
                    failure = failure or (url, exc.reason)  # the publisher's answer, not a fallback's
                    if exc.resumable and _size(part) > before and retries > 0:
                        retries -= 1
                        continue  # bytes were still arriving: ask for the rest
                    break
            part.unlink(missing_ok=True)  # the next source starts afresh
    assert failure is not None  # every source was tried and each one failed
    url, reason = failure
    # For a dataset of several files the rest belong in the same folder (one message, not four runs).
    partners = [f.name for f in entry.files if f != file]
    if partners:
        message = _(
            "{dataset}: could not download {url} ({reason}); download it on a machine that can and place it "
            "at {path}, beside its partners {names}."
        )
    else:
        message = _(
            "{dataset}: could not download {url} ({reason}); download it on a machine that can and place it at {path}."
        )
    raise UserError(message.format(dataset=entry.name, url=url, reason=reason, path=final, names=", ".join(partners)))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _stream(url: str, part: Path, file: RemoteFile, timeout: float, bar, announce: Callable[[str], None]) -> None:
    """One request: append the rest of `file` to `part` (a range request when part of it is there already)."""
    have = _size(part)
    if have >= file.size:
        return  # whole already (a previous run was stopped between the last byte and the check)
    headers = {"User-Agent": f"convscope/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            announce(url)
            resumed = have > 0 and response.status == 206
            if have and not resumed:  # the server ignored the range: start again from byte 0
                bar.reset(total=file.size)
            with open(part, "ab" if resumed else "wb") as out:
                written = have if resumed else 0
                while chunk := response.read(CHUNK):
                    written += len(chunk)
                    if written > file.size:
                        raise _Failed(
                            _("the server sent more than the published {size:,} bytes").format(size=file.size)
                        )
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Failed(_reason(exc.reason, timeout)) from None
    except (http.client.IncompleteRead, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
        raise _Failed(_broken(exc, _size(part), file.size, timeout), resumable=True) from None
    if _size(part) < file.size:
        raise _Failed(
            _("the connection ended after {got:,} of {size:,} bytes").format(got=_size(part), size=file.size),
            resumable=True,
        )


def _reason(reason: object, timeout: float) -> str:
    """urllib's `URLError.reason` as a phrase a person reads."""
    if isinstance(reason, ConnectionRefusedError):
        return _("connection refused")
    if isinstance(reason, socket.gaierror):
        return _("the host name does not resolve: no network, or no DNS")
    if isinstance(reason, TimeoutError):
        return _("no answer within {seconds:g} s").format(seconds=timeout)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _broken(exc: BaseException, got: int, size: int, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return _("no data for {seconds:g} s after {got:,} of {size:,} bytes").format(
            seconds=timeout, got=got, size=size
        )
    return _("the connection broke after {got:,} of {size:,} bytes").format(got=got, size=size)
