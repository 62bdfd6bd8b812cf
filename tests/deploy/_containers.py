"""Containers on this machine: the settings podman and buildah need here, and a local base.

No image registry is reachable here, so the base image is Debian bookworm with python3
made with debootstrap (cached in ``BASE_CACHE``, made only when absent) and imported with
podman. The image test and ``benchmarks/image.py`` both use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from shipyard.deploy import LOCAL_BASE_IMAGE as BASE_IMAGE

BASE_CACHE = Path(os.environ.get("SHIPYARD_TEST_BASE_CACHE", "~/.cache/shipyard-test-base"))
# This sandbox runs containers with runc and cgroupfs, and cannot raise the default limits.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
TOOLS = ("podman", "runc", "debootstrap")
APT = "apt-get install -y buildah podman runc debootstrap uidmap fuse-overlayfs slirp4netns"


def missing_tools() -> list[str]:
    """What of podman, runc and debootstrap is not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def container_settings(folder: Path) -> dict[str, str]:
    """The variables podman and buildah need here (a containers.conf written in ``folder``)."""
    conf = folder / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {"CONTAINERS_CONF": str(conf)}


def ensure_base_image(env: dict[str, str]) -> str:
    """``BASE_IMAGE`` in podman's store (made from the cached root file system, which is
    made first when absent: about a minute, from Debian's mirror). Returns its name."""
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env).returncode == 0:
        return BASE_IMAGE
    rootfs = BASE_CACHE.expanduser() / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        partial = rootfs.with_name("rootfs.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv"]
            + ["bookworm", str(partial)],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=1800,
        )
        partial.rename(rootfs)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, env=env, check=True)
    if tar.wait() != 0:
        raise RuntimeError(f"tar of {rootfs} failed")
    return BASE_IMAGE
