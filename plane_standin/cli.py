"""Command line: serve a stand-in, or drive a running one through its control API.

    python -m plane_standin serve --port 8090 --webhook-url URL --webhook-secret S
    python -m plane_standin work-item "Checkout fails on Safari"
    python -m plane_standin comment WORK_ITEM_ID "Can you triage this?" --mention
    python -m plane_standin send issue.updated
    python -m plane_standin uninstall

Every `serve` option also comes from an environment variable (see `read_env`).
"""

import argparse
import logging
import os
import signal
import threading

import requests

from . import defaults
from .server import StandIn

DEFAULT_PORT = 8090
DEFAULT_STANDIN_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
# The control API sends webhooks inline, and Plane's sender may wait 30 s per try.
CONTROL_TIMEOUT_SECONDS = 300


def read_env(environ: dict[str, str] | None = None) -> dict:
    """Read the defaults of every option from the environment, in one place."""
    env = os.environ if environ is None else environ
    redirect_uris = env.get("PLANE_REDIRECT_URI", defaults.REDIRECT_URI)
    return {
        "host": env.get("STANDIN_HOST", "127.0.0.1"),
        "port": int(env.get("STANDIN_PORT", DEFAULT_PORT)),
        "webhook_url": env.get("STANDIN_WEBHOOK_URL"),
        "webhook_secret": env.get("PLANE_WEBHOOK_SECRET"),
        "client_id": env.get("PLANE_CLIENT_ID", defaults.CLIENT_ID),
        "client_secret": env.get("PLANE_CLIENT_SECRET", defaults.CLIENT_SECRET),
        "redirect_uri": redirect_uris.replace(",", " ").split(),
        "delay_scale": float(env.get("STANDIN_DELAY_SCALE", defaults.DELAY_SCALE)),
        "standin_url": env.get("STANDIN_URL", DEFAULT_STANDIN_URL),
    }


def build_parser(env: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plane_standin", description="A local stand-in for Plane."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve Plane's endpoints")
    serve.add_argument(
        "--host", default=env["host"], help="address to bind (STANDIN_HOST)"
    )
    serve.add_argument(
        "--port", type=int, default=env["port"], help="TCP port (STANDIN_PORT)"
    )
    serve.add_argument(
        "--webhook-url",
        default=env["webhook_url"],
        help="the app's webhook URL that events are posted to (STANDIN_WEBHOOK_URL)",
    )
    serve.add_argument(
        "--webhook-secret",
        default=env["webhook_secret"],
        help="the app's webhook secret, used to sign events (PLANE_WEBHOOK_SECRET)",
    )
    serve.add_argument(
        "--client-id",
        default=env["client_id"],
        help="the app's OAuth client id (PLANE_CLIENT_ID)",
    )
    serve.add_argument(
        "--client-secret",
        default=env["client_secret"],
        help="the app's OAuth client secret (PLANE_CLIENT_SECRET)",
    )
    serve.add_argument(
        "--redirect-uri",
        action="append",
        help="a registered redirect URI; repeat for several (PLANE_REDIRECT_URI, "
        "comma separated)",
    )
    serve.add_argument(
        "--delay-scale",
        type=float,
        default=env["delay_scale"],
        help="factor on Plane's 0-600 s webhook retry waits (STANDIN_DELAY_SCALE)",
    )

    work_item = commands.add_parser("work-item", help="create a work item as Ada")
    work_item.add_argument("name")
    comment = commands.add_parser("comment", help="comment on a work item as Bo")
    comment.add_argument("work_item_id")
    comment.add_argument("text")
    comment.add_argument("--mention", action="store_true", help="mention the app's bot")
    comment.add_argument("--parent", help="id of the comment to reply to")
    send = commands.add_parser("send", help="send a fixture webhook by name")
    send.add_argument("fixture", help='for example "issue.updated"')
    uninstall = commands.add_parser("uninstall", help="uninstall the app")
    uninstall.add_argument("--installation-id", help="default: the current one")
    for client in (work_item, comment, send, uninstall):
        client.add_argument(
            "--standin-url",
            default=env["standin_url"],
            help=f"a running stand-in (STANDIN_URL, default {DEFAULT_STANDIN_URL})",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    env = read_env()
    args = build_parser(env).parse_args(argv)
    if args.command == "serve":
        return serve(args, env)
    try:
        return run_client_command(args)
    except requests.ConnectionError:
        print(
            f"Could not reach the stand-in at {args.standin_url}. "
            "Start one with `python -m plane_standin serve`, or pass --standin-url."
        )
        return 1


def serve(args: argparse.Namespace, env: dict) -> int:
    """Serve until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.webhook_url:
        print(
            "STANDIN_WEBHOOK_URL is not set. Pass --webhook-url, the app's webhook URL."
        )
        return 2
    if not args.webhook_secret:
        print(
            "PLANE_WEBHOOK_SECRET is not set. Pass --webhook-secret, the same secret "
            "the app verifies webhook signatures with."
        )
        return 2

    standin = StandIn(
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri or env["redirect_uri"],
        host=args.host,
        port=args.port,
        delay_scale=args.delay_scale,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with standin:
        print(
            f"Plane stand-in at {standin.url}, posting webhooks to {args.webhook_url}"
        )
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    return 0


def run_client_command(args: argparse.Namespace) -> int:
    """Call the control API of a running stand-in and print a short summary."""
    if args.command == "work-item":
        result = _post(args, "/work-items", {"name": args.name})
        item = result["work_item"]
        print(f"Created work item #{item['sequence_id']} {item['id']} {item['name']!r}")
    elif args.command == "comment":
        body = {
            "work_item_id": args.work_item_id,
            "text": args.text,
            "mention_bot": args.mention,
            "parent_id": args.parent,
        }
        result = _post(args, "/comments", body)
        print(f"Created comment {result['comment']['id']} as Bo")
    elif args.command == "send":
        result = _post(args, "/send", {"fixture": args.fixture})
        print(f"Sent fixture {args.fixture}")
    else:
        result = _post(args, "/uninstall", {"installation_id": args.installation_id})
        response = result["response"]
        outcome = response["status"] or response["error"]
        print(
            f"Uninstalled {result['notice']['app_installation_id']}; notice: {outcome}"
        )
        return 0
    for delivery in result["deliveries"]:
        print("  " + describe_delivery(delivery))
    return 0


def describe_delivery(delivery: dict) -> str:
    """Summarize one webhook send in a line."""
    name = f"{delivery['event']}/{delivery['action']}"
    if delivery.get("reason"):
        return f"{name}: not sent, {delivery['reason']}"
    if delivery.get("queued"):
        return f"{name}: sending in the background"
    attempts = delivery["attempts"]
    last = attempts[-1] if attempts else {}
    outcome = f"HTTP {last['status']}" if last.get("status") else "not delivered"
    return f"{name}: {outcome} after {len(attempts)} attempt(s)"


def _post(args: argparse.Namespace, path: str, body: dict) -> dict:
    url = args.standin_url.rstrip("/") + "/_standin" + path
    response = requests.post(url, json=body, timeout=CONTROL_TIMEOUT_SECONDS)
    result = response.json()
    if response.status_code >= 400:
        raise SystemExit(f"The stand-in rejected the request: {result.get('error')}")
    return result
