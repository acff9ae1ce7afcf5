"""Servers of the failure tests' own: started in temp dirs on free ports, killed at will.

Never the machine's shared PostgreSQL, MariaDB or Redis: the tests kill, hang and restart
these. A missing binary skips the tests that need it, with the reason, unless
``CROSSPREFETCH_REQUIRE_SERVICES=1`` (CI), which fails them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MethodType
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._fetch import workers

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker


#: Set by CI: a server that cannot be started fails the tests that need it.
REQUIRE_SERVICES = os.environ.get("CROSSPREFETCH_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when the services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"CROSSPREFETCH_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, open_: bool, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            is_open = sock.connect_ex(("127.0.0.1", port)) == 0
        if is_open == open_:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not {'open' if open_ else 'close'} in {seconds} s")


@contextlib.contextmanager
def stopped(
    server_processes: Callable[[], list[int]], at_most: float, *, after: float = 0.0
) -> Iterator[None]:
    """The server's processes stopped (SIGSTOP: TCP still accepts, nothing answers) for the
    block, ``after`` seconds into it (0: at once; later: in the middle of what the block
    does; the processes are listed then, with the backends of connections opened since),
    and continued when it ends, and after ``at_most`` seconds in any case, so that a request
    that never returns cannot leave a server stopped for good."""
    lock = threading.Lock()
    ended = [False]
    processes: list[int] = []

    def stop() -> None:
        with lock:
            if not ended[0]:
                processes.extend(server_processes())
                for pid in processes:  # a backend may have ended since it was listed
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)

    def resume() -> None:
        with lock:
            ended[0] = True
            for pid in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    safety = threading.Timer(at_most, resume)
    later = threading.Timer(after, stop)
    try:
        if after:
            later.start()
        else:
            stop()
        safety.start()
        yield
    finally:
        later.cancel()
        safety.cancel()
        resume()


@contextlib.contextmanager
def database_alias(
    alias: str, settings_dict: dict[str, Any], blocker: DjangoDbBlocker
) -> Iterator[None]:
    """A database alias of the test's own, next to those of ``settings.DATABASES``.

    Django's test case refuses connections to aliases it does not manage (and managing
    one would wrap it in the test's transaction, which the failure tests must control):
    this alias's connection connects the way it would outside tests.
    """
    configured = connections.configure_settings({"default": {}, alias: dict(settings_dict)})
    connections.settings[alias] = configured[alias]
    connection = connections[alias]
    real = blocker._real_ensure_connection
    assert real is not None
    connection.ensure_connection = MethodType(real, connection)  # type: ignore[method-assign]
    # the threads crossprefetch queries on (deadline workers) connect to it as well
    patched = BaseDatabaseWrapper.ensure_connection

    def ensure_connection(self: BaseDatabaseWrapper) -> None:
        (real if self.alias == alias else patched)(self)

    BaseDatabaseWrapper.ensure_connection = ensure_connection  # type: ignore[method-assign]
    workers.reset()
    try:
        yield
    finally:
        BaseDatabaseWrapper.ensure_connection = patched  # type: ignore[method-assign]
        workers.reset()
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


# PostgreSQL ---------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for directory in reversed(found):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A PostgreSQL cluster in a temp dir; :meth:`kill` is a crash, not a shutdown."""

    def __init__(self, bin_dir: Path, directory: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        # initdb refuses to run as root: run the cluster as the postgres OS user then
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> None:
        if self.run_as:
            shutil.chown(self.directory, user="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        wait_for_port(self.port, open_=True)

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, by PID: the server is gone at once."""
        pid = self.pid
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        wait_for_port(self.port, open_=False)
        for process in (pid, *children):
            _wait_gone(process)
        # a killed postmaster may linger as a zombie (nobody reaps it in a container), and
        # a new one refuses a lock file naming a PID that exists
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for name in (f".s.PGSQL.{self.port}.lock", f".s.PGSQL.{self.port}"):
            (self.directory / name).unlink(missing_ok=True)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def hung(
        self, at_most: float = 30, *, after: float = 0.0
    ) -> contextlib.AbstractContextManager[None]:
        """The postmaster and its backends stopped (SIGSTOP: TCP still accepts, nothing
        answers) for the block, ``after`` seconds into it, then continued (see
        :func:`stopped`)."""
        return stopped(lambda: [self.pid, *_children(self.pid)], at_most, after=after)

    def settings(self) -> dict[str, Any]:
        return self.settings_for(self.port)

    @staticmethod
    def settings_for(port: int) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            # one TCP connection per attempt, so that attempts can be counted
            "OPTIONS": {"sslmode": "disable", "gssencmode": "disable", "connect_timeout": 2},
        }


def _children(pid: int) -> list[int]:
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.split("/")[2]))
    return children


def _wait_gone(pid: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        status = Path(f"/proc/{pid}/status")
        with contextlib.suppress(OSError):
            if "State:\tZ" in status.read_text():
                return
        time.sleep(0.02)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own, for tests that kill it."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        unavailable("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bin_dir is not None
    directory = Path(tempfile.mkdtemp(prefix="crossprefetch-pg-"))
    server = PostgresServer(bin_dir, directory)
    try:
        server.init()
        server.start()
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
        unavailable(f"a private PostgreSQL server could not be started ({exc})")
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


# A server that accepts and hangs up ----------------------------------------------------------


class HangingUp:
    """Listens on a port, counts the connections it accepts, and closes each at once.

    What a client meets when the server process dies as it accepts: every connection
    attempt fails, and each one is counted.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            client.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


# MariaDB ------------------------------------------------------------------------------------


class MariadbServer:
    """A ``mariadbd`` of the test session's own: a datadir made by ``mariadb-install-db``
    in a temp dir, 127.0.0.1 on a free port, user ``root`` without a password."""

    def __init__(self, mariadbd: str, install_db: str, directory: Path) -> None:
        self.mariadbd = mariadbd
        self.install_db = install_db
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        subprocess.run(
            [
                self.install_db,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--user={_user()}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.mariadbd,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.directory / 'mariadbd.sock'}",
                f"--pid-file={self.directory / 'mariadbd.pid'}",
                f"--log-error={self.directory / 'error.log'}",
                f"--user={_user()}",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, open_=True, seconds=60)

    def hung(self, at_most: float = 30) -> contextlib.AbstractContextManager[None]:
        """The server stopped with SIGSTOP for the block (see :func:`stopped`)."""
        process = self.process
        assert process is not None
        return stopped(lambda: [process.pid], at_most)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait(30)
        self.process = None

    def settings(self, name: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": "root",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariadbServer]:
    """A MariaDB server of the test session's own, for tests that stop it."""
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
    install_db = shutil.which("mariadb-install-db")
    if mariadbd is None or install_db is None:
        unavailable("the MariaDB server binaries (mariadbd, mariadb-install-db) are not installed")
    assert mariadbd is not None
    assert install_db is not None
    directory = Path(tempfile.mkdtemp(prefix="crossprefetch-mariadb-"))
    server = MariadbServer(mariadbd, install_db, directory)
    try:
        server.init()
        server.start()
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
        unavailable(f"a private MariaDB server could not be started ({exc})")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# Redis --------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own, which the test may hang with SIGSTOP."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, open_=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hang(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    assert binary is not None
    server = RedisServer(binary, tmp_path)
    yield server
    server.stop()
