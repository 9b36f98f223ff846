"""Local servers: MariaDB, the Snowflake emulator, and moto, started on loopback when needed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if path:
            return path
    return None


def ensure_mariadb_installed() -> tuple[str, str]:
    """The MariaDB server and install-db binaries, installing Debian's mariadb-server if missing."""
    server, install = _find("mariadbd", "mysqld"), _find("mariadb-install-db", "mysql_install_db")
    if server and install:
        return server, install
    if shutil.which("apt-get") is None:
        raise RuntimeError("MariaDB is not installed and apt-get is not available: install mariadb-server")
    print("installing mariadb-server (once)...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "mariadb-server", "mariadb-client"], check=True, env=env)
    server, install = _find("mariadbd", "mysqld"), _find("mariadb-install-db", "mysql_install_db")
    if not server or not install:
        raise RuntimeError("mariadb-server installed but mariadbd was not found")
    return server, install


@dataclass
class MariaDB:
    """A MariaDB server on a data directory of its own; reused while its pid file says it runs."""

    base: Path
    port: int = 0
    user: str = "replicator"
    password: str = "replicator-local"
    database: str = "demo"
    # more server options (a test's TLS certificate, say)
    extra_args: tuple[str, ...] = ()

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def start(self) -> MariaDB:
        server, install = ensure_mariadb_installed()
        self.base = self.base.resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        port_file = self.base / "port"
        if port_file.exists() and self._alive(int(port_file.read_text())):
            self.port = int(port_file.read_text())
            return self
        fresh = not (self.datadir / "mysql").exists()
        if fresh:
            subprocess.run(
                [
                    install,
                    f"--datadir={self.datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *(["--user=root"] if os.geteuid() == 0 else []),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.port = self.port or free_port()
        log = open(self.base / "mariadb.log", "ab")  # noqa: SIM115 - lives with the server
        args = [
            server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.base / 'mysqld.sock'}",
            f"--pid-file={self.base / 'mysqld.pid'}",
            "--innodb-buffer-pool-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
            # the binlog, as change data capture needs it (docs/cdc.md): row events with full images and
            # column names, GTIDs (always on in MariaDB with a binlog), one server id
            f"--log-bin={self.base / 'binlog'}",
            "--server-id=1",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--max-binlog-size=64M",
            "--max-connections=200",
            *self.extra_args,
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.port, 60, "MariaDB", proc)
        port_file.write_text(str(self.port))
        root = pymysql.connect(unix_socket=str(self.base / "mysqld.sock"), user="root", autocommit=True)
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4")
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
            cur.execute("CREATE USER IF NOT EXISTS %s@'localhost' IDENTIFIED BY %s", (self.user, self.password))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%'", (self.user,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'localhost'", (self.user,))
        root.close()
        return self

    def _alive(self, port: int) -> bool:
        try:
            pymysql.connect(
                host="127.0.0.1", port=port, user=self.user, password=self.password, connect_timeout=2
            ).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def url(self) -> str:
        return f"mysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def connect(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            database=database or self.database,
            charset="utf8mb4",
            autocommit=True,
        )

    def stop(self) -> None:
        pid_file = self.base / "mysqld.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass
        (self.base / "port").unlink(missing_ok=True)


@dataclass
class SnowflakeEmulator:
    """The fakesnow emulator in server mode, persisting under ``base``; reused while it answers."""

    base: Path
    port: int = 0

    def start(self) -> SnowflakeEmulator:
        self.base = self.base.resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        port_file = self.base / "port"
        if port_file.exists():
            port = int(port_file.read_text())
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    self.port = port
                    return self
        self.port = self.port or free_port()
        log = open(self.base / "emulator.log", "ab")  # noqa: SIM115 - lives with the server
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aurora_replication_dev.local.snowflake_emulator",
                "--port",
                str(self.port),
                "--db-path",
                str(self.base / "db"),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        (self.base / "pid").write_text(str(proc.pid))
        wait_for_port(self.port, 60, "Snowflake emulator", proc)
        port_file.write_text(str(self.port))
        return self

    def url(self, database: str = "ANALYTICS", schema: str = "REPLICA") -> str:
        return f"snowflake://fake:snow@emulator/{database}/{schema}?host=127.0.0.1&port={self.port}&protocol=http"

    def stop(self) -> None:
        pid_file = self.base / "pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), 15)
            except (ProcessLookupError, ValueError):
                pass
        (self.base / "port").unlink(missing_ok=True)
