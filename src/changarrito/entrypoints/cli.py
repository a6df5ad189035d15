"""The ``changarrito`` command.

Every failure Changarrito anticipates ends as one line on stderr and a non-zero exit, never a
traceback: ``changarrito: <what is wrong and how to fix it>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from changarrito import __version__
from changarrito.adapters.postgres.pool import Pool
from changarrito.bootstrap import Service, bootstrap, prepare_database
from changarrito.domain.errors import ChangarritoError, ConfigurationError
from changarrito.domain.integration_views import Actor
from changarrito.domain.ports import Cipher
from changarrito.settings import DEFAULT_HOST, DEFAULT_PORT, Settings

EXIT_ERROR = 1
#: Who the audit log says made a change from the command line.
CLI = Actor(subject="cli")
EXIT_USAGE = 2


def _tenant_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a tenant id (a UUID): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="changarrito",
        description="Multi-tenant WhatsApp, LLM and payment integrations with platform fallback.",
    )
    parser.add_argument("--version", action="version", version=f"changarrito {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service and its message workers")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--role", choices=("all", "backend", "whatsapp"), help="default: CHANGARRITO_ROLE or all"
    )
    serve.add_argument("--workers", type=int, default=1, help="HTTP worker processes")

    sub.add_parser("migrate", help="apply pending schema migrations")

    tenants = sub.add_parser("tenants", help="create, list and delete tenants")
    tsub = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create a tenant and print its id")
    create.add_argument("--name", required=True)
    create.add_argument("--json", action="store_true", help="print {id, name} as JSON")
    listing = tsub.add_parser("list", help="list tenants")
    listing.add_argument("--json", action="store_true")
    delete = tsub.add_parser("delete", help="delete a tenant with its credentials and numbers")
    delete.add_argument("tenant_id", type=_tenant_id, metavar="ID")

    tokens = sub.add_parser("tokens", help="tenant JWTs")
    tosub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = tosub.add_parser("issue", help="print a tenant JWT signed with JWT_SECRET")
    issue.add_argument("--tenant", required=True, type=_tenant_id, metavar="ID")
    issue.add_argument("--ttl", default="1h", help="lifetime: 3600, 15m, 1h, 7d (default 1h)")

    keys = sub.add_parser("keys", help="encryption keys")
    ksub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = ksub.add_parser("rotate", help="re-encrypt every credential under the primary key")
    rotate.add_argument("--batch-size", type=int, default=200)
    generate = ksub.add_parser("generate", help="print a new key ring entry (kid:base64key)")
    generate.add_argument("--kid", default=None, help="key id (default: a dated id)")

    sub.add_parser("plugins", help="list installed provider plugins and their ids")

    sub.add_parser("worker", help="run the message workers only (no HTTP)")
    messages = sub.add_parser("messages", help="inbound WhatsApp messages and their state")
    msub = messages.add_subparsers(dest="action", required=True, metavar="ACTION")
    mlist = msub.add_parser("list", help="a tenant's recent messages, newest first")
    mlist.add_argument("--tenant", required=True, metavar="ID", help="tenant id, or 'platform'")
    mlist.add_argument("--limit", type=int, default=20)
    mlist.add_argument(
        "--state", choices=("pending", "processing", "answered", "ignored", "failed", "dead")
    )
    mlist.add_argument("--json", action="store_true")
    mretry = msub.add_parser("retry", help="re-queue a failed or dead message")
    mretry.add_argument("message_id", type=int, metavar="ID")
    usage = sub.add_parser("usage", help="a month of the usage ledger, by source and kind")
    usage.add_argument(
        "--tenant", metavar="ID", help="a tenant id, or 'platform' (default: every tenant)"
    )
    usage.add_argument("--month", metavar="YYYY-MM", help="default: this month")
    usage.add_argument("--json", action="store_true")
    budgets = sub.add_parser(
        "budgets", help="limits on the tenants' use of the platform's credentials"
    )
    bsub = budgets.add_subparsers(dest="action", required=True, metavar="ACTION")
    bshow = bsub.add_parser("show", help="a tenant's budgets and figures, or the defaults")
    bshow.add_argument("--tenant", required=True, metavar="ID", help="a tenant id, or 'default'")
    bshow.add_argument("--json", action="store_true")
    bset = bsub.add_parser("set", help="set (or --clear) one metric's limits")
    bset.add_argument("--tenant", required=True, metavar="ID", help="a tenant id, or 'default'")
    bset.add_argument(
        "--metric",
        required=True,
        choices=(
            "llmTokens",
            "transcriptionSeconds",
            "platformMessages",
            "platformTemplateContacts",
        ),
    )
    bset.add_argument("--soft", type=int)
    bset.add_argument("--hard", type=int)
    bset.add_argument("--clear", action="store_true", help="remove this metric's limits")
    bset.add_argument("--json", action="store_true")
    events = sub.add_parser("events", help="events for the platform's backend (the outbox)")
    esub = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    elist = esub.add_parser("list", help="the newest events, with their delivery")
    elist.add_argument("--state", choices=("pending", "delivered", "dead"))
    elist.add_argument("--limit", type=int, default=20)
    elist.add_argument("--json", action="store_true")
    eretry = esub.add_parser("retry", help="send dead events again")
    eretry.add_argument("ids", type=int, nargs="*", metavar="ID")
    eretry.add_argument("--dead", action="store_true", help="every dead event")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        from changarrito.adapters.logs import configure_logging

        # Commands other than serve and worker log warnings only, unless a level is asked for.
        loud = args.command in ("serve", "worker")
        default = "INFO" if loud else "WARNING"
        configure_logging(settings.log_level or default)
        command = COMMANDS[args.command]
        return command(settings, args)
    except ChangarritoError as exc:
        print(f"changarrito: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _run(settings: Settings, work: Callable[[Service], Awaitable[int]]) -> int:
    """Runs ``work(service)`` against the configured database, migrated and checked."""
    database = prepare_database(settings)

    async def go() -> int:
        service = await bootstrap(settings, database, listen=False)
        try:
            return await work(service)
        finally:
            await service.aclose()

    return asyncio.run(go())


def _pool(service: Service) -> Pool:
    if service.storage.pool is None:
        raise ConfigurationError("this command needs PostgreSQL")
    return service.storage.pool


def _cipher(service: Service) -> Cipher:
    if service.storage.cipher is None:
        raise ConfigurationError("this command needs the key ring")
    return service.storage.cipher


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.server import serve

    role = args.role or settings.role.name
    return serve(settings, host=args.host, port=args.port, role=role, workers=args.workers)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.adapters.postgres.migrate import migrate

    async def work(service: Service) -> int:
        applied = await migrate(_pool(service))
        print("applied: " + ", ".join(applied) if applied else "schema is up to date")
        return 0

    return _run(settings, work)


def cmd_tenants(settings: Settings, args: argparse.Namespace) -> int:
    async def work(service: Service) -> int:
        tenants = service.tenants
        if args.action == "create":
            tenant = await tenants.create(args.name, CLI)
            if args.json:
                print(json.dumps({"id": str(tenant.id), "name": tenant.name}))
            else:
                print(tenant.id)
        elif args.action == "list":
            found = await tenants.list()
            if args.json:
                rows = [
                    {"id": str(t.id), "name": t.name, "createdAt": t.created_at.isoformat()}
                    for t in found
                ]
                print(json.dumps(rows))
            else:
                for t in found:
                    print(f"{t.id}  {t.created_at:%Y-%m-%d %H:%M}  {t.name}")
        else:
            await tenants.delete(args.tenant_id, CLI)
            print(f"deleted {args.tenant_id}")
        return 0

    return _run(settings, work)


def cmd_tokens(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.adapters.tokens import issue_token, parse_duration
    from changarrito.bootstrap import embedded_defaults

    settings = embedded_defaults(settings)
    auth = settings.auth
    secret = settings.require("JWT_SECRET", auth.jwt_secret)
    ttl = parse_duration(args.ttl)

    async def work(service: Service) -> int:
        await service.tenants.get(args.tenant)  # unknown tenant: a clear error
        token = issue_token(
            secret, args.tenant, ttl, issuer=auth.jwt_issuer, audience=auth.jwt_audience
        )
        print(token)
        return 0

    return _run(settings, work)


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.adapters.crypto.keyring import KeyRing

    if args.action == "generate":
        print(KeyRing.generate(args.kid).serialize())
        return 0
    from changarrito.adapters.postgres.rotation import rotate_keys

    def progress(done: int, total: int) -> None:
        print(f"\rre-encrypted {done}/{total}", end="", file=sys.stderr, flush=True)

    async def work(service: Service) -> int:
        report = await rotate_keys(
            _pool(service), _cipher(service), batch_size=args.batch_size, progress=progress
        )
        print(file=sys.stderr)
        print(
            f"rotated {report.rotated}, already current {report.already_current}, "
            f"failed {len(report.failed)}"
        )
        for row_id in report.failed:
            print(f"  could not decrypt credential {row_id}", file=sys.stderr)
        return EXIT_ERROR if report.failed else 0

    return _run(settings, work)


def cmd_plugins(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.plugins.manager import format_plugins_table, load_plugins

    print(format_plugins_table(load_plugins(settings.plugins)))
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.workers import run

    return run(settings)


def cmd_messages(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.messages import list_messages, retry_message

    if args.action == "list":
        return _run(settings, lambda service: list_messages(service, args))
    return _run(settings, lambda service: retry_message(service, args.message_id))


def cmd_usage(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.usage import print_usage

    return _run(settings, lambda service: print_usage(service, args))


def cmd_budgets(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.budgets import set_budget, show_budgets

    if args.action == "show":
        return _run(settings, lambda service: show_budgets(service, args))
    return _run(settings, lambda service: set_budget(service, args))


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    from changarrito.entrypoints.events import list_events, retry_events

    if args.action == "list":
        return _run(settings, lambda service: list_events(service, args))
    return _run(settings, lambda service: retry_events(service, args))


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "tenants": cmd_tenants,
    "tokens": cmd_tokens,
    "keys": cmd_keys,
    "plugins": cmd_plugins,
    "worker": cmd_worker,
    "messages": cmd_messages,
    "events": cmd_events,
    "usage": cmd_usage,
    "budgets": cmd_budgets,
}


if __name__ == "__main__":
    sys.exit(main())
