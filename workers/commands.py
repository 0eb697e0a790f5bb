"""Operator commands, run as ``python manage.py COMMAND`` (or a platform one-off).

They read the same settings as the web and worker processes and never print a
token: token status shows expiry times and store versions only.
"""

import argparse
import sys
import time

from rq.job import Job
from rq.registry import FailedJobRegistry

from shared import queues
from shared.deliveries import DELIVERY_LOG_TTL_SECONDS, DeliveryQueue
from shared.errors import PlaneAPIError, PlaneAppError, SettingsError
from shared.installations import InstallationStore
from shared.logs import configure_logging
from shared.settings import load_settings
from workers import runtime


def _describe_expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "none stored"
    remaining = expires_at - time.time()
    if remaining <= 0:
        return f"expired {int(-remaining)} s ago"
    return f"expires in {int(remaining)} s"


def list_installations(context, arguments, output) -> int:
    ids = context.store.list_ids()
    if not ids:
        print("No installations are stored.", file=output)
        return 0
    print(
        f"{'installation':<38} {'workspace':<20} {'status':<22} bot token", file=output
    )
    for installation_id in ids:
        installation = context.store.get(installation_id)
        bot = context.store.load_bot_token(installation_id)
        print(
            f"{installation.id:<38} {installation.workspace_slug:<20} "
            f"{installation.status:<22} "
            f"{_describe_expiry(bot.expires_at if bot else None)}",
            file=output,
        )
    return 0


def show_token_status(context, arguments, output) -> int:
    installation = _require_installation(context.store, arguments.installation_id)
    bot = context.store.load_bot_token(installation.id)
    user = context.store.load_user_tokens(installation.id)
    print(f"installation: {installation.id}", file=output)
    print(f"workspace:    {installation.workspace_slug}", file=output)
    print(f"status:       {installation.status}", file=output)
    print(
        f"bot token:    {_describe_expiry(bot.expires_at if bot else None)}",
        file=output,
    )
    user_status = _describe_expiry(user.expires_at if user else None)
    version = f" (version {user.version})" if user else ""
    print(f"user token:   {user_status}{version}", file=output)
    return 0


def force_refresh(context, arguments, output) -> int:
    installation = _require_installation(context.store, arguments.installation_id)
    credentials = context.credentials(installation.id)
    if arguments.kind in ("bot", "all"):
        current = context.store.load_bot_token(installation.id)
        credentials.renew_bot_token(current.access_token if current else "")
        print("bot token renewed", file=output)
    if arguments.kind in ("user", "all"):
        current = context.store.load_user_tokens(installation.id)
        if current is None:
            print("no user token is stored; nothing to refresh", file=output)
        else:
            credentials.renew_user_token(current.access_token)
            print("user token refreshed", file=output)
    return 0


def remove_installation(context, arguments, output) -> int:
    installation = _require_installation(context.store, arguments.installation_id)
    tokens = []
    user = context.store.load_user_tokens(installation.id)
    if user is not None:
        tokens += [
            (user.refresh_token, "refresh_token"),
            (user.access_token, "access_token"),
        ]
    bot = context.store.load_bot_token(installation.id)
    if bot is not None:
        tokens.append((bot.access_token, "access_token"))

    failures = 0
    for token, hint in tokens:
        try:
            context.oauth.revoke_token(token, token_type_hint=hint)
        except PlaneAPIError as error:
            failures += 1
            print(f"could not revoke a {hint} at Plane: {error}", file=output)
    if failures and not arguments.force:
        print(
            "Nothing was deleted. Retry later, or pass --force to delete the "
            "stored installation anyway.",
            file=output,
        )
        return 1
    context.store.delete(installation)
    print(
        f"removed installation {installation.id} ({installation.workspace_slug}); "
        f"{len(tokens) - failures} of {len(tokens)} tokens revoked at Plane",
        file=output,
    )
    return 0


def reencrypt_tokens(context, arguments, output) -> int:
    total = 0
    ids = context.store.list_ids()
    for installation_id in ids:
        total += context.store.reencrypt_tokens(installation_id)
    print(
        f"re-encrypted {total} tokens of {len(ids)} installations with the first "
        "key in TOKEN_ENCRYPTION_KEYS; older keys can now be removed from the list",
        file=output,
    )
    return 0


def list_dead_letters(context, arguments, output) -> int:
    registry = _failed_registry(context, arguments.queue)
    job_ids = registry.get_job_ids()
    if not job_ids:
        print(f"No failed jobs on the {arguments.queue} queue.", file=output)
        return 0
    jobs = Job.fetch_many(
        job_ids, connection=context.redis, serializer=queues.SERIALIZER
    )
    for job in filter(None, jobs):
        print(f"{job.id}  {job.ended_at or '-'}  {job.description}", file=output)
        print(f"    {_last_error_line(job)}", file=output)
    print(f"{len(job_ids)} failed jobs on the {arguments.queue} queue", file=output)
    return 0


def _last_error_line(job: Job) -> str:
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result else []
    return lines[-1] if lines else "no error recorded"


def replay_dead_letters(context, arguments, output) -> int:
    registry = _failed_registry(context, arguments.queue)
    job_ids = registry.get_job_ids() if arguments.all else arguments.job_ids
    if not job_ids:
        print("Name failed job ids to replay, or pass --all.", file=output)
        return 1
    replayed = 0
    for job_id in job_ids:
        if job_id not in registry:
            print(f"{job_id}: not in the failed-job registry; skipped", file=output)
            continue
        registry.requeue(job_id)
        replayed += 1
        print(f"{job_id}: requeued", file=output)
    print(f"replayed {replayed} of {len(job_ids)} jobs", file=output)
    return 0 if replayed == len(job_ids) else 1


def replay_delivery(context, arguments, output) -> int:
    deliveries = DeliveryQueue(context.redis)
    job_id = deliveries.job_id_for_delivery(arguments.delivery_id)
    job = queues.fetch_job(job_id, context.redis) if job_id else None
    if job_id and job is None and deliveries.waits_in_inbox(job_id):
        raise PlaneAppError(
            f"Delivery {arguments.delivery_id!r} was accepted and still waits in "
            "the inbox, so it has not run yet and there is nothing to replay. "
            "Check that a worker pool (python -m workers) is running."
        )
    if job is None:
        raise PlaneAppError(
            f"No delivery {arguments.delivery_id!r} is in the delivery log "
            f"(it keeps {DELIVERY_LOG_TTL_SECONDS // 3600} hours). Check the id "
            "against the web process's 'delivery enqueued' log line."
        )
    replay = deliveries.replay(job, reason=f"delivery {arguments.delivery_id}")
    print(
        f"delivery {arguments.delivery_id} enqueued again as job {replay.id}",
        file=output,
    )
    return 0


def _failed_registry(context, queue_name: str) -> FailedJobRegistry:
    return FailedJobRegistry(
        queue_name, connection=context.redis, serializer=queues.SERIALIZER
    )


def _require_installation(store: InstallationStore, installation_id: str):
    installation = store.get(installation_id)
    if installation is None:
        raise PlaneAppError(
            f"No installation {installation_id!r} is stored. "
            "List them with: python manage.py installations"
        )
    return installation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manage.py", description="Operate the Plane app backend."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("installations", help="list stored installations")
    listing.set_defaults(run=list_installations)

    tokens = commands.add_parser("tokens", help="show an installation's token expiry")
    tokens.add_argument("installation_id")
    tokens.set_defaults(run=show_token_status)

    refresh = commands.add_parser("refresh", help="renew an installation's tokens now")
    refresh.add_argument("installation_id")
    refresh.add_argument(
        "--kind",
        choices=("bot", "user", "all"),
        default="all",
        help="which token to renew (default: all)",
    )
    refresh.set_defaults(run=force_refresh)

    remove = commands.add_parser(
        "remove", help="revoke an installation's tokens at Plane and delete it"
    )
    remove.add_argument("installation_id")
    remove.add_argument(
        "--force",
        action="store_true",
        help="delete the stored installation even if Plane could not revoke a token",
    )
    remove.set_defaults(run=remove_installation)

    rotate = commands.add_parser(
        "reencrypt-tokens",
        help="re-encrypt every stored token with the first TOKEN_ENCRYPTION_KEYS key",
    )
    rotate.set_defaults(run=reencrypt_tokens)

    dead = commands.add_parser(
        "dead-letters", help="list jobs that failed after their last retry"
    )
    dead.add_argument(
        "--queue", default=queues.DELIVERY_QUEUE, help="default: deliveries"
    )
    dead.set_defaults(run=list_dead_letters)

    replay = commands.add_parser(
        "replay", help="requeue failed jobs (handlers done before stay done)"
    )
    replay.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    replay.add_argument(
        "--all", action="store_true", help="every failed job on the queue"
    )
    replay.add_argument(
        "--queue", default=queues.DELIVERY_QUEUE, help="default: deliveries"
    )
    replay.set_defaults(run=replay_dead_letters)

    again = commands.add_parser(
        "replay-delivery",
        help="run a delivery again by its X-Plane-Delivery id, all handlers included",
    )
    again.add_argument("delivery_id")
    again.set_defaults(run=replay_delivery)
    return parser


def main(argv: list[str] | None = None, output=sys.stdout) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"The command cannot start. {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    context = runtime.init(settings)
    try:
        return arguments.run(context, arguments, output)
    except PlaneAppError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
