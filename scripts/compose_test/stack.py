"""One Compose project started from the repository's docker-compose.yml with podman-compose, and taken away."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .images import ROOT, podman, podman_env

LABEL = "io.podman.compose.project"


def _compose_command() -> list[str]:
    beside = Path(sys.executable).with_name("podman-compose")  # the venv's, pinned in requirements/dev.in
    return [str(beside) if beside.exists() else "podman-compose"]


@dataclass
class Stack:
    project: str
    port: int
    variables: dict[str, str]  # what docker-compose.yml interpolates (PLATFORM_IMAGE, WEB_PORT, ...)
    profile: str | None = None
    started: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str) -> None:
        command = [*_compose_command(), "--project-name", self.project, "--file", str(ROOT / "docker-compose.yml")]
        if self.profile:
            command += ["--profile", self.profile]
        done = subprocess.run(
            [*command, *args],
            env={**podman_env(), **self.variables},
            cwd=ROOT,
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def up(self) -> None:
        self.compose("up", "--detach", "--no-build")

    def down(self) -> None:
        """Stops and removes the containers; the volumes stay (a redeploy)."""
        self.compose("down", "--timeout", "20")

    def container(self, service: str) -> str:
        names = podman(
            "ps", "--all", "--filter", f"label={LABEL}={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}", capture=True,
        ).stdout.split()  # fmt: skip
        if len(names) != 1:
            raise RuntimeError(f"expected one {service} container, found {names}")
        return names[0]

    def logs(self, service: str) -> str:
        done = podman("logs", self.container(service), capture=True, check=False)
        return done.stdout + done.stderr

    def running(self, service: str) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.container(service), capture=True)
        return state.stdout.strip() == "true"

    def wait_until_serving(self, timeout: float = 600) -> None:
        """Until the login page answers 200; a web container that stops on the way fails at once, with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/login/", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not self.running("web"):
                raise RuntimeError("the web container stopped:\n" + self.logs("web")[-3000:])
            time.sleep(2)
        raise RuntimeError(f"the web server did not answer within {timeout:.0f} s:\n" + self.logs("web")[-3000:])

    def gateway(self) -> str:
        """The host's address on the project's network: where containers reach a server of this script."""
        network = f"{self.project}_default"
        done = podman("network", "inspect", network, "--format", "{{range .Subnets}}{{.Gateway}} {{end}}", capture=True)
        gateways = done.stdout.split()
        if not gateways:
            raise RuntimeError(f"no gateway on {network}")
        return gateways[0]

    def remove(self) -> list[str]:
        """Down with the volumes, then whatever of this project is left; returns what had to be removed by hand."""
        try:
            self.compose("down", "--volumes", "--timeout", "20")
        except RuntimeError as exc:
            print(f"   {exc}")
        leftovers = []
        for kind, listing in (
            ("container", ["ps", "--all", "--filter", f"label={LABEL}={self.project}", "--format", "{{.Names}}"]),
            ("volume", ["volume", "ls", "--filter", f"label={LABEL}={self.project}", "--format", "{{.Name}}"]),
            ("network", ["network", "ls", "--filter", f"label={LABEL}={self.project}", "--format", "{{.Name}}"]),
        ):
            for name in podman(*listing, capture=True, check=False).stdout.split():
                leftovers.append(f"{kind} {name}")
                podman(kind, "rm", "--force", name, capture=True, check=False)
        return leftovers
