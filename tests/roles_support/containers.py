"""Podman on a machine without a Docker engine or a registry: configuration, and test images made locally.

The images are cached in podman's storage under a cache directory (PGTIDY_TEST_CACHE, default
/var/tmp/pgtidy-test-cache) and tagged with a hash of their recipe, so a test session (and the next one on the
same machine) builds each of them once: debootstrap (about a minute), the PostgreSQL stand-in base and the
systemd host image (about 40 s each).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("PGTIDY_TEST_CACHE", "/var/tmp/pgtidy-test-cache")
SUITE = "bookworm"
MIRROR = os.environ.get("PGTIDY_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def missing_tools():
    """Names of the tools these tests need that the machine lacks."""
    return [tool for tool in ("podman", "debootstrap", "systemd-analyze") if shutil.which(tool) is None]


def podman_env():
    """Environment for podman/buildah: vfs storage in the cache, host network, cgroupfs, runc, chroot builds."""
    os.makedirs(CACHE, exist_ok=True)
    storage = os.path.join(CACHE, "storage.conf")
    containers = os.path.join(CACHE, "containers.conf")
    with open(storage, "w") as fh:
        fh.write('[storage]\ndriver = "vfs"\nrunroot = "%s/run"\ngraphroot = "%s/graph"\n' % (CACHE, CACHE))
    with open(containers, "w") as fh:
        fh.write('[containers]\nnetns = "host"\ndefault_ulimits = ["nofile=10240:10240", "nproc=8192:8192"]\n'
                 '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n')
    env = dict(os.environ)
    env.update(CONTAINERS_STORAGE_CONF=storage, CONTAINERS_CONF=containers, BUILDAH_ISOLATION="chroot")
    return env


def podman(*args, check=True, env=None, **kw):
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True,
                          env=env or podman_env(), **kw)


def image_exists(name):
    return podman("image", "exists", name, check=False).returncode == 0


def _recipe_hash(*parts):
    digest = hashlib.sha256()
    for part in parts:
        if os.path.isdir(part):
            for root, _dirs, files in sorted(os.walk(part)):
                for name in sorted(files):
                    with open(os.path.join(root, name), "rb") as fh:
                        digest.update(name.encode() + fh.read())
        else:
            digest.update(str(part).encode())
    return digest.hexdigest()[:12]


class _CacheLock:
    """Two test processes on one machine must not build the same image at once."""

    def __enter__(self):
        os.makedirs(CACHE, exist_ok=True)
        self.fh = open(os.path.join(CACHE, ".lock"), "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.fh.close()


def debian_base():
    """localhost/pgtidy-test/bookworm-min: debootstrap --variant=minbase, imported into podman."""
    name = "localhost/pgtidy-test/%s-min:%s" % (SUITE, _recipe_hash(SUITE, MIRROR, "minbase"))
    with _CacheLock():
        if image_exists(name):
            return name
        work = tempfile.mkdtemp(prefix="pgtidy-rootfs-", dir=CACHE)
        try:
            subprocess.run(["debootstrap", "--variant=minbase", SUITE, os.path.join(work, "rootfs"), MIRROR],
                           check=True, capture_output=True, text=True)
            tar = subprocess.Popen(["tar", "-C", os.path.join(work, "rootfs"), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["podman", "import", "-", name], stdin=tar.stdout, check=True, capture_output=True,
                           env=podman_env())
            tar.wait()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return name


def _build(recipe_dir, name_prefix, tag_prefix):
    base = debian_base()
    name = "%s:%s%s" % (name_prefix, tag_prefix, _recipe_hash(recipe_dir, base))
    with _CacheLock():
        if not image_exists(name):
            podman("build", "--pull=never", "--build-arg", "BASE=" + base, "-t", name, recipe_dir)
    return name


def postgres_base():
    """Stand-in for pgvector/pgvector:pg17: Debian bookworm with postgresql-15 and the official entrypoint contract.
    The tag starts with pg15 so the role derives the major from it as it does from pg17."""
    return _build(os.path.join(HERE, "pgbase"), "localhost/pgtidy-test/postgres", "pg15-")


def systemd_host():
    """A Debian bookworm host image that boots systemd."""
    return _build(os.path.join(HERE, "systemd"), "localhost/pgtidy-test/systemd-host", "")


def wheelhouse(packages):
    """Wheels of ``packages`` for an offline pip install on the (same Python, same platform) test host."""
    target = os.path.join(CACHE, "wheelhouse-" + _recipe_hash(*packages))
    with _CacheLock():
        if not os.path.isdir(target):
            tmp = target + ".part"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                            "--dest", tmp, *packages], check=True, capture_output=True, text=True)
            os.rename(tmp, target)
    return target
