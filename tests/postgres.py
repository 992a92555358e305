"""A throwaway PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temporary folder.

PostgreSQL refuses to run as root, and CI runs as root: there the cluster belongs to `nobody` and every
server command runs through `runuser`. The server listens on 127.0.0.1 at a free port (trust
authentication, no fsync: nothing here needs to survive the test session) and is stopped at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from convscope.training.distributed import _free_port


class Unavailable(Exception):
    """PostgreSQL is not installed here or cannot start: the reason, for the skip message."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian keeps each major version apart)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise Unavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
            "`make system-deps` installs Debian's postgresql package"
        )
    return Path(found[-1]).parent


def _as_owner(command: list[str]) -> list[str]:
    """Root cannot run PostgreSQL: run it as `nobody`. Anyone else runs it as themselves."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser, so PostgreSQL cannot be started as another user")
    return ["runuser", "-u", "nobody", "--", *command]


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise Unavailable(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")


@contextmanager
def postgres_server() -> Iterator[Server]:
    """Start a fresh cluster, yield where it listens, stop it and delete it."""
    bin_dir = binaries()
    # Not under pytest's tmp folders: they are private to their owner, and the owner of this cluster
    # is `nobody` when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="convscope-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (root, sockets):
            shutil.chown(path, "nobody")
    port, user = _free_port(), "convscope"
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"])
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"])
        started = True
        yield Server("127.0.0.1", port, user)
    finally:
        if started:
            subprocess.run(
                _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: Server, name: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    # autocommit: CREATE DATABASE cannot run inside a transaction
    with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)
