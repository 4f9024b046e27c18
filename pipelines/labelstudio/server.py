"""Start and stop a local Label Studio server living in its own virtualenv.

Label Studio's pins conflict with Prefect's, so the server is installed in a
separate virtualenv (`make labelstudio-venv`: .venv-labelstudio) and run as a
subprocess; this process only talks HTTP to it. The first start of a fresh data
dir runs the migrations (about 35 s) and creates the first user with a known
legacy API token, which is why these variables must be set on that first start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from datasets_cards.constants import PROJECT_ROOT

DEFAULT_VENV = PROJECT_ROOT / ".venv-labelstudio"
HEALTH_PATH = "/health"
LOG_FILE = "label-studio.log"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_env(
    data_dir: str | Path, document_root: str | Path, *, username: str, password: str, token: str
) -> dict[str, str]:
    """The environment a Label Studio server needs for the review: data dir, first user, local files."""
    return {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # `Authorization: Token ...` for scripts
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        # Clips are served from disk at /data/local-files/?d=<path relative to the document root>.
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        # Offline-friendly: no PyPI version check, no analytics, and no error reporter (the open-source
        # settings default both DSNs to Sentry's servers; an empty one turns the reporter off, server and page).
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_SENTRY_DSN": "",
        "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
    }


@dataclass
class LabelStudioServer:
    """A Label Studio process bound to `host`: `with LabelStudioServer(...) as ls: ls.url`."""

    data_dir: Path  # created if missing; a fresh one costs the migrations on first start
    document_root: Path  # local-files root: media must lie below it
    venv: Path = DEFAULT_VENV
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    username: str = "admin@example.com"
    password: str = "change-me-please"
    token: str = "robot-annotate-local-token"
    startup_timeout_s: float = 240.0  # first start runs migrations; later starts take seconds
    poll_interval_s: float = 0.5
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def executable(self) -> Path:
        return Path(self.venv) / "bin" / "label-studio"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        # --internal-host is the bind address; --host only names the server in generated links.
        return [
            str(self.executable), "start", "--no-browser",
            "--internal-host", self.host, "--port", str(self.port),
        ]

    def start(self) -> LabelStudioServer:
        if not self.executable.exists():
            raise FileNotFoundError(
                f"no Label Studio server at {self.executable}; create it with `make labelstudio-venv`"
            )
        if not self.port:
            self.port = free_port(self.host)
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **server_env(
                self.data_dir, self.document_root, username=self.username, password=self.password, token=self.token
            ),
        }
        log = open(Path(self.data_dir) / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        # Its own session, so stop() can signal the server and any worker it forks, and nothing else.
        self._process = subprocess.Popen(
            self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._log = log
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, chars: int = 3000) -> str:
        path = Path(self.data_dir) / LOG_FILE
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with code {self._process.returncode} during start-up:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}{HEALTH_PATH}", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(self.poll_interval_s)
        raise TimeoutError(f"Label Studio not healthy after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate the server's process group, then kill it if it lingers."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            pgid = os.getpgid(process.pid)
            os.killpg(pgid, signal.SIGTERM)
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                process.wait(grace_s)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def wait(self) -> int:
        """Block until the server exits; returns its exit code."""
        if self._process is None:
            raise RuntimeError("Label Studio is not running")
        return self._process.wait()

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.labelstudio.server`: run Label Studio in the foreground until Ctrl-C (`make labelstudio`)."""
    import argparse

    defaults = LabelStudioServer(data_dir=Path(), document_root=Path())
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / ".labelstudio-data")
    parser.add_argument("--document-root", type=Path, default=PROJECT_ROOT / "outputs", help="clips lie below it")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--username", default=os.environ.get("LABEL_STUDIO_USERNAME", defaults.username))
    parser.add_argument("--password", default=os.environ.get("LABEL_STUDIO_PASSWORD", defaults.password))
    parser.add_argument("--token", default=os.environ.get("LABEL_STUDIO_USER_TOKEN", defaults.token))
    args = parser.parse_args(argv)
    args.document_root.mkdir(parents=True, exist_ok=True)
    server = LabelStudioServer(
        data_dir=args.data_dir.resolve(), document_root=args.document_root.resolve(), venv=args.venv,
        host=args.host, port=args.port, username=args.username, password=args.password, token=args.token,
    )
    print(f"starting Label Studio (the first start of a data dir runs migrations, ~1 min); log: {args.data_dir / LOG_FILE}")
    with server:
        print(f"Label Studio on {server.url}  user {server.username}  token {server.token}")
        print(f"then: export LABEL_STUDIO_URL={server.url} LABEL_STUDIO_API_KEY={server.token}")
        try:
            server.wait()
        except KeyboardInterrupt:
            print("stopping Label Studio")


if __name__ == "__main__":
    main()
