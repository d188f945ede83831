"""The images `make compose-test` runs, built with podman from Debian's mirror (no Docker Hub on CI machines).

- a Debian bookworm base with Python 3.11, made with debootstrap and `podman import` (cached: built once per
  machine, under a tag named for its recipe);
- the platform image: the project's Dockerfile on that base (podman's layer cache keeps the pip layer while
  requirements/base.txt is unchanged);
- a PostgreSQL image from Debian's package on that base, standing in for the official image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# debootstrap does not follow virtual packages: python3.11-venv needs python3.11-distutils, which
# python3-distutils provides, so it is named too (apt would call the image broken otherwise).
DEBOOTSTRAP_PACKAGES = "python3.11,python3.11-venv,python3-distutils,ca-certificates"
SUITE = "bookworm"
IMAGE_PREFIX = "localhost/agentic-compose-test"
PLATFORM_IMAGE = f"{IMAGE_PREFIX}/platform:latest"
POSTGRES_IMAGE = f"{IMAGE_PREFIX}/postgres:15"
# crun fails on these machines' hybrid cgroups; runc refuses podman's default ulimits.
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


def cache_dir() -> Path:
    """Outside the checkout, so a clean clone still finds the base built by an earlier run."""
    base = os.environ.get("COMPOSE_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agentic-compose-test"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def podman_env() -> dict[str, str]:
    """The environment every podman and podman-compose call gets: our containers.conf, nothing else changed."""
    conf = cache_dir() / "containers.conf"
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=podman_env(), check=check, text=True, capture_output=capture, stdin=subprocess.DEVNULL
    )


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def debian_mirror() -> str:
    """The machine's configured Debian mirror for the main archive (not the security one)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file() or source.suffix not in ("", ".list", ".sources"):
            continue
        text = source.read_text(errors="replace")
        found = re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
        found += [u for u in re.findall(r"^URIs:\s*(.+)$", text, re.M) for u in u.split()]
        for uri in found:
            if "security" not in uri and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def base_image() -> str:
    """The debootstrap base, built only when no image of this recipe exists yet."""
    mirror = debian_mirror()
    recipe = hashlib.sha256(f"{SUITE} minbase {DEBOOTSTRAP_PACKAGES} {mirror}".encode()).hexdigest()[:12]
    name = f"{IMAGE_PREFIX}/bookworm-python:{recipe}"
    if image_exists(name):
        print(f"   cached: {name}")
        return name
    print(f"   debootstrap {SUITE} from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", SUITE, rootfs, mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "-", name], stdin=tar.stdout, env=podman_env(), capture_output=True, text=True
        )
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr.strip()}")
    return name


def _host_trust() -> list[str]:
    """Build-time mounts that let pip inside the build trust what the host trusts.

    CI machines reach PyPI through a TLS-inspecting proxy whose CA only the host's bundle holds. The bundle
    and a pip.conf naming it are mounted for the RUN steps only: nothing of them is left in the image."""
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(bundle).is_file():
        return []
    conf = cache_dir() / "pip.conf"
    conf.write_text("[global]\ncert = /run/host-ca.crt\n")
    return ["--volume", f"{bundle}:/run/host-ca.crt:ro", "--volume", f"{conf}:/etc/pip.conf:ro"]


def build(tag: str, *, dockerfile: Path, context: Path, base: str) -> None:
    # Docker's format: OCI images have no HEALTHCHECK.
    podman(
        "build", "--format", "docker", "--build-arg", f"BASE_IMAGE={base}", *_host_trust(),
        "--tag", tag, "--file", str(dockerfile), str(context),
    )  # fmt: skip


def platform_image(base: str) -> str:
    build(PLATFORM_IMAGE, dockerfile=ROOT / "Dockerfile", context=ROOT, base=base)
    return PLATFORM_IMAGE


def postgres_image(base: str) -> str:
    build(POSTGRES_IMAGE, dockerfile=HERE / "postgres.Dockerfile", context=HERE, base=base)
    return POSTGRES_IMAGE


def require_tools() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install podman runc debootstrap (.ci/run does)")
