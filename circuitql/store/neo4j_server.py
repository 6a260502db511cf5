"""A local Neo4j server without Docker: build the launcher, start it detached, stop it.

The server is the embedded Neo4j Community build in ``neo4j-launcher/`` (a Maven project next to
the package), run as a plain ``java`` process. Its data directory holds everything about one
server: Neo4j's ``data/`` and ``logs/``, the launcher's output (``launcher.log``) and the pid
file, so ``stop`` and ``status`` need nothing but the directory, and the data survives restarts.

Usage: ``python -m circuitql.store.neo4j_server start|stop|status [--data-dir DIR] [--port N]``.
The password (of user ``neo4j``) comes from ``--password`` or ``$CIRCUITQL_NEO4J_PASSWORD`` and
defaults to ``circuitql-dev``; it is applied at the first start of a data directory only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from circuitql.errors import CircuitQLError, StoreError
from circuitql.processes import alive

DEFAULT_DATA_DIR = Path(".neo4j")
DEFAULT_PORT = 7687
DEFAULT_PASSWORD = "circuitql-dev"
MIN_PASSWORD_LENGTH = 8  # Neo4j's own default for dbms.security.auth_minimum_password_length
READY_LINE = "circuitql-neo4j ready"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0

LAUNCHER_DIR = Path(
    os.environ.get("CIRCUITQL_NEO4J_LAUNCHER")
    or Path(__file__).resolve().parents[2] / "neo4j-launcher"
)
PID_FILE = "neo4j.pid"
PORT_FILE = "neo4j.port"
LOG_FILE = "launcher.log"

# What Neo4j 5.26's own neo4j.conf passes to the JVM (server.jvm.additional), less
# -XX:+AlwaysPreTouch, which would commit the whole heap up front on a shared machine.
JVM_FLAGS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-XX:FlightRecorderOptions=stackdepth=256",
    "-XX:+UnlockDiagnosticVMOptions",
    "-XX:+DebugNonSafepoints",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j.layout.jsonTemplate.maxStringLength=32768",
)


@dataclass(frozen=True)
class ServerStatus:
    """Where a data directory's server stands; ``uri`` carries no password."""

    running: bool
    data_dir: Path
    log_file: Path
    pid: int | None = None
    port: int | None = None

    @property
    def uri(self) -> str | None:
        """The Bolt address on localhost; None unless the server runs on a known port."""
        return f"neo4j://127.0.0.1:{self.port}" if self.running and self.port else None


def start(
    data_dir: Path | str = DEFAULT_DATA_DIR,
    port: int = DEFAULT_PORT,
    password: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> ServerStatus:
    """Start a server on ``data_dir`` and return once it accepts Bolt connections.

    ``port=0`` picks a free port. A server already running on the directory is returned as it
    is (asking for a different port then is an error: stop it first).
    """
    data_dir = Path(data_dir).resolve()
    password = checked_password(password)
    current = status(data_dir)
    if current.running:
        if port not in (0, current.port):
            raise StoreError(
                f"a Neo4j server already runs on this directory, on port {current.port}",
                where=str(data_dir),
                fix=f"use port {current.port}, or stop it first: circuitql neo4j stop",
            )
        return current
    if port:
        check_port_free(port)
    java = require_tool("java", "install a Java 17 runtime (e.g. apt-get install openjdk-17-jre)")
    jar = build_launcher()
    port = port or _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / LOG_FILE
    offset = log_path.stat().st_size if log_path.exists() else 0
    pid = _spawn_detached(
        [java, *JVM_FLAGS, "-jar", str(jar), str(data_dir), str(port)],
        log_path,
        {**os.environ, "CIRCUITQL_NEO4J_PASSWORD": password},
    )
    (data_dir / PID_FILE).write_text(f"{pid}\n")
    (data_dir / PORT_FILE).write_text(f"{port}\n")
    _wait_ready(pid, port, log_path, offset, timeout)
    return ServerStatus(True, data_dir, log_path, pid, port)


def stop(data_dir: Path | str = DEFAULT_DATA_DIR, timeout: float = STOP_TIMEOUT_S) -> ServerStatus:
    """SIGTERM the directory's server (Neo4j then shuts down cleanly) and wait for it to exit.

    Stopping a server that is not running is not an error; a stale pid file is removed.
    """
    data_dir = Path(data_dir).resolve()
    current = status(data_dir)
    if current.running and current.pid is not None:
        os.kill(current.pid, signal.SIGTERM)
        if not _wait_exit(current.pid, timeout):
            raise StoreError(
                f"the Neo4j server (pid {current.pid}) did not stop within {timeout:.0f} s",
                where=str(current.log_file),
                fix=f"look at the log, then end it by hand: kill -9 {current.pid}",
            )
    (data_dir / PID_FILE).unlink(missing_ok=True)
    return ServerStatus(False, data_dir, data_dir / LOG_FILE)


def status(data_dir: Path | str = DEFAULT_DATA_DIR) -> ServerStatus:
    """Read from the directory's pid and port files; a pid that is no longer this directory's
    launcher (it exited, or the pid was reused) reads as stopped. Changes nothing."""
    data_dir = Path(data_dir).resolve()
    log_path = data_dir / LOG_FILE
    pid = _read_int(data_dir / PID_FILE)
    if pid is None or not _is_our_server(pid, data_dir):
        return ServerStatus(False, data_dir, log_path)
    return ServerStatus(True, data_dir, log_path, pid, _read_int(data_dir / PORT_FILE))


def build_launcher() -> Path:
    """The launcher jar, built with Maven unless it is newer than every source file.

    A file lock keeps concurrent starts (parallel CI jobs) from running Maven twice at once.
    """
    pom = LAUNCHER_DIR / "pom.xml"
    if not pom.is_file():
        raise StoreError(
            "the Neo4j launcher sources are missing",
            where=str(LAUNCHER_DIR),
            fix="run from a circuitql checkout, set CIRCUITQL_NEO4J_LAUNCHER to its "
            "neo4j-launcher folder, or start Neo4j with docker/docker-compose.yml",
        )
    target = LAUNCHER_DIR / "target"
    jar = target / "neo4j-launcher.jar"
    target.mkdir(exist_ok=True)
    with _locked(target / ".build.lock"):
        if _up_to_date(jar, target / "lib"):
            return jar
        mvn = require_tool("mvn", "install Maven 3.8+ (e.g. apt-get install maven)")
        build = subprocess.run(
            [mvn, "-q", "-B", "package"],
            cwd=LAUNCHER_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0 or not jar.is_file():
            tail = "\n".join((build.stdout + build.stderr).strip().splitlines()[-15:])
            raise StoreError(
                f"building the Neo4j launcher failed:\n{tail}",
                where=str(LAUNCHER_DIR),
                fix="check that Maven Central is reachable, then run `mvn -B package` there",
            )
    return jar


def _up_to_date(jar: Path, lib: Path) -> bool:
    if not jar.is_file() or not lib.is_dir():
        return False
    sources = [LAUNCHER_DIR / "pom.xml", *(LAUNCHER_DIR / "src").rglob("*")]
    newest = max(p.stat().st_mtime for p in sources if p.is_file())
    return jar.stat().st_mtime >= newest


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _spawn_detached(command: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Start ``command`` in its own session, not as our child, and return its pid.

    A short-lived shell starts it in the background and exits, so the server outlives the
    caller (the CLI returns at once) and never lingers as our zombie once it stops.
    """
    shell = subprocess.run(
        ["/bin/sh", "-c", '"$@" </dev/null >>"$CIRCUITQL_LOG" 2>&1 & echo $!', "sh", *command],
        env={**env, "CIRCUITQL_LOG": str(log_path)},
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    return int(shell.stdout.strip())


def _wait_ready(pid: int, port: int, log_path: Path, offset: int, timeout: float) -> None:
    """Ready means the launcher printed its line *and* the Bolt port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise StoreError(
                "the Neo4j server exited during start-up",
                where=str(log_path),
                fix="read the log (and logs/debug.log beside it) for the cause",
            )
        if READY_LINE in _log_since(log_path, offset) and _port_open(port):
            return
        time.sleep(0.25)
    os.kill(pid, signal.SIGTERM)
    _wait_exit(pid, STOP_TIMEOUT_S)
    raise StoreError(
        f"the Neo4j server was not ready within {timeout:.0f} s and was stopped",
        where=str(log_path),
        fix="read the log (and logs/debug.log beside it); a busy machine may need a longer timeout",
    )


def _log_since(log_path: Path, offset: int) -> str:
    with log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """The pid is alive and still the launcher for this directory (pids get reused)."""
    if not alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.is_file():
        return True  # no /proc to check against: trust the pid file
    args = cmdline.read_bytes().split(b"\0")
    return str(data_dir).encode() in args and any(a.endswith(b"neo4j-launcher.jar") for a in args)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def resolved_password(password: str | None) -> str:
    """The password of user ``neo4j``: the one given, else ``$CIRCUITQL_NEO4J_PASSWORD``,
    else the default."""
    return password or os.environ.get("CIRCUITQL_NEO4J_PASSWORD") or DEFAULT_PASSWORD


def checked_password(password: str | None) -> str:
    """``resolved_password``, refused when Neo4j would refuse it: checked before a server
    starts, and before the bulk path prepares a zoo for one."""
    password = resolved_password(password)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(
            f"the Neo4j password must have at least {MIN_PASSWORD_LENGTH} characters",
            fix="choose a longer password (--password or CIRCUITQL_NEO4J_PASSWORD)",
        )
    return password


def local_uri(port: int, password: str | None) -> str:
    """The store URI of a server started here on ``port``, credentials included."""
    return f"neo4j://neo4j:{quote(resolved_password(password), safe='')}@127.0.0.1:{port}"


def require_tool(name: str, fix: str) -> str:
    """The path of a program the local server needs (``java``, ``mvn``), or a StoreError
    saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise StoreError(f"`{name}` is not on PATH; the local Neo4j server needs it", fix=fix)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int) -> None:
    """Refuse a port something on 127.0.0.1 listens on, before a server is started there
    (or a database imported for one)."""
    with socket.socket() as sock:
        # As the JVM does for a server socket: connections of a stopped server that linger
        # in TIME_WAIT do not keep the port from being listened on again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise StoreError(
                f"port {port} on 127.0.0.1 is already in use ({err.strerror})",
                fix="stop whatever listens there, or pick another port with --port "
                "(0 picks a free one)",
            ) from None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def add_arguments(parser: argparse.ArgumentParser, actions: tuple[str, ...] = ()) -> None:
    """The options of ``start|stop|status``, shared by this module's main and the CLI (which
    adds ``actions`` of its own)."""
    parser.add_argument("action", choices=["start", "stop", "status", *actions])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default .neo4j")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--password", help=f"default $CIRCUITQL_NEO4J_PASSWORD or {DEFAULT_PASSWORD}"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed action; exit code 0, 1 for ``status`` of a stopped server.

    User errors raise ``CircuitQLError`` for the caller to print.
    """
    if args.action == "start":
        result = start(args.data_dir, args.port, args.password)
    elif args.action == "stop":
        result = stop(args.data_dir)
    else:
        result = status(args.data_dir)
    state = f"running (pid {result.pid})" if result.running else "stopped"
    print(f"neo4j server {state}; data {result.data_dir}; log {result.log_file}")
    if result.uri and result.port:
        # What to paste, credentials included; the bare address stays the last line.
        uri = local_uri(result.port, args.password)
        print(f"to use it: export CIRCUITQL_STORE={shlex.quote(uri)}")
        print(result.uri)
    return 0 if result.running or args.action == "stop" else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m circuitql.store.neo4j_server``: the exit status (2 for a user error, printed
    to stderr without a traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m circuitql.store.neo4j_server",
        description="Run a local Neo4j server (no Docker) for circuitql's Neo4j store.",
    )
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except CircuitQLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
