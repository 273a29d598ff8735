"""A throwaway PostgreSQL server for tests: ``initdb`` into a temp dir, started on a free loopback port.

Uses the Debian ``postgresql`` package's binaries (``/usr/lib/postgresql/<ver>/bin``) or any
``initdb``/``pg_ctl`` on PATH. PostgreSQL refuses to run as root, so under root the server runs as
the ``postgres`` system user through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lamina.testing.processes import free_port

INSTALL_HINT = "install the Debian package postgresql (apt-get install -y postgresql; .ci/run does it)"


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest version first, or None."""
    env = os.environ.get("LAMINA_PG_BIN")
    if env:
        return Path(env)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    bin_dir: Path
    user: str = "postgres"
    host: str = "127.0.0.1"
    db: str = "postgres"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> PostgresServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise FileNotFoundError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' system user to run it "
                    f"as; {INSTALL_HINT} (it creates the user), or run the tests as a normal user"
                ) from None
            for path in (self.data_dir.parent, self.data_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        result = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        opts = (
            f"-p {self.port} -k {self.data_dir} -h {self.host} -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=200"
        )
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            raise RuntimeError(
                f"pg_ctl start failed:\n{result.stderr}\n{log.read_text() if log.exists() else ''}"
            )
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def dsn(self, db: str | None = None) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db or self.db}"

    def kvstore_config(self, **overrides: object) -> dict[str, object]:
        """A run config ``metadata_store`` section pointing at this server."""
        return {
            "type": "postgres",
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "user": self.user,
            **overrides,
        }


def start_postgres(base_dir: Path) -> PostgresServer:
    bin_dir = find_pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        where = f" in {bin_dir} (LAMINA_PG_BIN)" if bin_dir else " (/usr/lib/postgresql/*/bin or PATH)"
        raise FileNotFoundError(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found{where}; {INSTALL_HINT}"
        )
    return PostgresServer(data_dir=base_dir / "pgdata", port=free_port(), bin_dir=bin_dir).start()
