"""The `zns-bot` command line: serve, send, check, status, audit and privacy."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bot import auditing, lookup, privacy, status
from bot.config import Settings, load_settings
from bot.errors import ZNS_ERRORS, ConfigError, InputError, StoreError, StoreLockedError
from bot.esms.client import EsmsClient
from bot.ops.logs import configure_logging, secrets_from_settings
from bot.phones import mask_phone
from bot.service import SendService
from bot.settings_check import check_environment
from bot.stores import open_store
from bot.templates import TemplateCatalogue
from storage.sends import SendRecord, SendState
from storage.store import FILE_NAME, Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3


def _version() -> str:
    """The installed distribution's version (what pip shows), so a bug report names it."""
    try:
        return metadata.version("zns-bot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from bot import __version__

        return f"{__version__} (not installed)"


EXIT_STATUS = """\
exit status:
  0  done
  1  failed (the error says why)
  2  bad input or settings: nothing was changed"""

SEND_EXIT_STATUS = """\
exit status:
  0  accepted by eSMS (with --sandbox: checked by eSMS, nothing delivered)
  1  failed: eSMS refused it (the error says why)
  2  bad input or settings: nothing was sent or stored
  3  outcome unknown (no reply from eSMS): do not resend; a running
     `zns-bot serve` re-submits it with the same request id, which eSMS
     refuses to send twice within 24 h"""


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; an exit-status table keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit status:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parser() -> argparse.ArgumentParser:
    raw = _HelpFormatter  # every parser: wrapped descriptions, exit-status tables kept
    parser = argparse.ArgumentParser(
        prog="zns-bot",
        description=(
            "Send Zalo ZNS messages through eSMS.vn, with an audit log. Settings come from "
            "the environment or a .env file in the working directory (see .env.example)."
        ),
        epilog=EXIT_STATUS + "\n\n`zns-bot COMMAND --help` describes each command.",
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = sub.add_parser(
        "send",
        help="send one ZNS message now (recorded and audited)",
        description=(
            "Send one ZNS template message through eSMS now, from the shell. The phone, the "
            "template (it must be ENABLE) and each parameter are checked as in Slack; the "
            "request and its audit events are recorded (actor cli:<os user>, approved by "
            "the operator, no second person), then it is submitted and its SMSID printed. "
            "Not while `zns-bot serve` holds the same ZNS_DATA_DIR."
        ),
        epilog=SEND_EXIT_STATUS,
        formatter_class=raw,
    )
    send.add_argument("--phone", required=True, help="customer's mobile, e.g. 0901888484")
    send.add_argument("--template", required=True, help="ZNS template id (TempID)")
    send.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter; repeat for each",
    )
    send.add_argument("--oaid", help="Zalo OA id (default: ESMS_OAID)")
    send.add_argument("--journey", action="store_true", help="send as a journey message")
    send.add_argument("--order-id", help="the journey's OrderId (required with --journey)")
    send.add_argument("--campaign", help="campaign name shown in eSMS reports")
    send.add_argument("--sandbox", action="store_true", help="validate only: not sent, not charged")

    sub.add_parser(
        "check",
        help="check everything serve needs: settings, eSMS, Slack, channels, store",
        description=(
            "Check everything `serve` needs, one line each: the required settings, LIVE or "
            "SANDBOX mode, eSMS credentials, balance and OA, the bot token (auth.test), the "
            "approvals and notification channels (they exist and the bot is in them), the "
            "approver and requester user groups, PUBLIC_BASE_URL (https) and the store in "
            "ZNS_DATA_DIR, read-only beside a running bot. Sends and posts nothing."
        ),
        epilog=EXIT_STATUS.replace(
            "1  failed (the error says why)", "1  a check failed (its line says why)"
        ),
        formatter_class=raw,
    )
    sub.add_parser(
        "serve",
        help="run the Slack app, callbacks and scheduler (HOST:PORT)",
        description=(
            "Run the bot: the Slack app (POST /slack/events, or Socket Mode when "
            "SLACK_APP_TOKEN is set), eSMS delivery callbacks (GET /esms/callback/...), "
            "GET /healthz on HOST:PORT, GET /metrics on METRICS_HOST:METRICS_PORT, and the "
            "scheduled jobs (delivery polling, reconcile, Slack relay, expiry, archive "
            "passes). Logs one JSON object "
            "per line on stderr. Runs until SIGTERM or Ctrl-C."
        ),
        formatter_class=raw,
    )

    look = sub.add_parser(
        "status",
        help="what happened to a send, by send id, SMSID or phone (beside serve)",
        description=(
            "Show a send's state, template, masked phone, requester, approver, SMSID, "
            "delivery result in plain words and audit trail, whether it is still live or "
            "archived; a phone lists its recent sends, newest first. Read-only: runs beside "
            "a live `zns-bot serve`."
        ),
        epilog=EXIT_STATUS.replace("1  failed (the error says why)", "1  no such send"),
        formatter_class=raw,
    )
    look.add_argument("key", metavar="SEND_ID|SMSID|PHONE", help="zns-…, eSMS's SMSID or 09…")
    look.add_argument("--json", action="store_true", help="print a JSON document for scripts")
    look.add_argument("--unmask", action="store_true", help="show full phone numbers")

    audit = sub.add_parser(
        "audit",
        help="the audit log (verify and export run beside serve)",
        description=(
            "The tamper-evident audit log in ZNS_DATA_DIR. verify and export only read: they "
            "run beside a live `zns-bot serve`; seal needs it stopped."
        ),
        formatter_class=raw,
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_sub.add_parser(
        "verify",
        help="check the audit log's chain, seals and content",
        description=(
            "Check the whole audit log: the hash chain of every segment and of the live "
            "store, each seal, and each send's recorded content against its digest. Names "
            "an edited, missing or replaced event, seal or segment."
        ),
        epilog=EXIT_STATUS.replace("1  failed (the error says why)", "1  a problem was found"),
        formatter_class=raw,
    )
    verify.add_argument("--send", metavar="SEND_ID", help="check this send only (quick)")
    export = audit_sub.add_parser(
        "export",
        help="write audit events to a CSV file",
        description=(
            "Write audit events to a CSV file (mode 0600), filtered by day, phone, send or "
            "SMSID. Phones are masked unless --unmask."
        ),
        epilog=EXIT_STATUS,
        formatter_class=raw,
    )
    export.add_argument("--csv", required=True, metavar="FILE", help="a file, or - for stdout")
    export.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC day on")
    export.add_argument("--until", metavar="YYYY-MM-DD", help="up to this UTC day, included")
    export.add_argument("--phone", help="only the sends to this phone number")
    export.add_argument("--send", metavar="SEND_ID", help="only this send")
    export.add_argument("--sms-id", metavar="SMSID", help="only the send eSMS knows by this")
    export.add_argument("--unmask", action="store_true", help="write full phone numbers")
    audit_sub.add_parser(
        "seal",
        help="seal the current audit segment now (serve must be stopped)",
        description=(
            "Seal the current audit segment now (read-only, compressed as "
            "ZNS_AUDIT_COMPRESSION says) and start a new one. `serve` seals each month "
            "itself when it is over; this refuses while `serve` holds the store."
        ),
        epilog=EXIT_STATUS,
        formatter_class=raw,
    )

    private = sub.add_parser(
        "privacy",
        help="a customer's personal data (serve must be stopped)",
        description="A customer's personal data in the store and the audit log.",
        formatter_class=raw,
    )
    private_sub = private.add_subparsers(dest="privacy_command", required=True, metavar="COMMAND")
    erase = private_sub.add_parser(
        "erase",
        help="erase a customer's phone, parameters and notes everywhere",
        description=(
            "Erase a customer's phone, parameters, OrderIds and notes from the live store, "
            "every audit segment and index, keeping `audit verify` valid; an `erased` event "
            "records who and when, never the phone. Refuses while `serve` holds the store "
            "or while a send to the number is not final. Asks for confirmation unless --yes."
        ),
        epilog=EXIT_STATUS,
        formatter_class=raw,
    )
    erase.add_argument("--phone", required=True, help="the customer's phone, 0… or +84…")
    erase.add_argument("--dry-run", action="store_true", help="show what would be erased")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param expects NAME=VALUE, got '{pair}'")
        params[name.strip()] = value
    return params


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _open_store(settings: Settings) -> Store:
    return open_store(settings)


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("esms_api_key", "esms_secret_key")
    params = _parse_params(args.param)
    actor = _actor()
    with _open_store(settings) as store:
        async with EsmsClient.from_settings(settings) as client:
            catalogue = TemplateCatalogue(client, ttl=settings.zns_template_ttl)
            service = SendService(
                settings=settings, store=store, client=client, catalogue=catalogue
            )
            request = await service.prepare(
                phone=args.phone,
                template_id=args.template,
                params=params,
                oaid=args.oaid,
                is_journey=args.journey,
                order_id=args.order_id,
                campaign=args.campaign,
                sandbox=args.sandbox,
            )
            record: SendRecord = service.create(request, actor=actor)
            # The operator at the shell holds the eSMS keys; the CLI records that no second
            # person approved instead of pretending one did.
            service.approve(
                record["id"], actor=actor, reason="sent from the command line", check_self=False
            )
            record = await service.submit(record["id"], actor=actor)
    return _report(record)


def _report(record: SendRecord) -> int:
    tag = " [SANDBOX]" if record.get("sandbox") else ""
    who = f"{mask_phone(record['phone'])}, template {record['template_id']}"
    state = record["state"]
    if state == SendState.ACCEPTED:
        print(f"accepted{tag}: SMSID {record['sms_id']} ({who}; request {record['id']})")
        return EXIT_OK
    if state == SendState.SANDBOXED:
        # Checked and accepted by eSMS, never delivered: the end of a sandbox send.
        sms = f", SMSID {record['sms_id']}" if record.get("sms_id") else ""
        print(
            f"sandboxed{tag}: accepted by eSMS, nothing delivered{sms} "
            f"({who}; request {record['id']})"
        )
        return EXIT_OK
    if state == SendState.UNKNOWN:
        print(
            f"outcome unknown{tag}: {record.get('unknown_reason', '')} ({who}; request "
            f"{record['id']}). Do not resend: eSMS refuses the same request id for 24 h.",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    print(
        f"error{tag}: {record.get('error', state)} ({who}; request {record['id']})", file=sys.stderr
    )
    return EXIT_FAILED


async def _check(settings: Settings) -> int:
    # Slack's client (aiohttp) loads only for this command: every other command starts faster
    from bot import checks

    results = await checks.run_all(settings)
    for result in results:
        print(result.line(), flush=True)
    failed = [r.subject for r in results if r.failed]
    if failed:
        print(
            f"error: {len(failed)} check(s) failed: {', '.join(dict.fromkeys(failed))}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    ok, summary, problems = auditing.verify(settings.zns_data_dir, send_id=args.send)
    print(summary, file=sys.stdout if ok else sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def _check_csv_target(target: str) -> None:
    """Refuse a --csv path that cannot be a new file before anything is read or created."""
    if target == "-":
        return
    path = Path(target)
    if path.is_dir():
        raise InputError(f"--csv {target} is a directory; name a file, e.g. {path / 'audit.csv'}")
    if not path.parent.is_dir():
        raise InputError(f"--csv {target}: there is no directory {path.parent}")


def _export(settings: Settings, args: argparse.Namespace) -> int:
    _check_csv_target(args.csv)
    wanted = auditing.ExportFilter(
        since=auditing.parse_day(args.since, "--since"),
        until=auditing.parse_day(args.until, "--until"),
        phone=args.phone,
        send_id=args.send,
        sms_id=args.sms_id,
    )
    summary = auditing.export(settings.zns_data_dir, args.csv, wanted, unmask=args.unmask)
    # with --csv -, the rows own standard output: the summary goes to stderr
    print(summary, file=sys.stderr if args.csv == "-" else sys.stdout)
    return EXIT_OK


def _status(settings: Settings, args: argparse.Namespace) -> int:
    """Read-only beside serve, like `audit export`: 0 found, 1 not found, 2 a malformed key."""
    try:
        found = lookup.find_sends(auditing.open_history(settings.zns_data_dir), args.key)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        document = status.lookup_json(found, unmask=args.unmask)
        print(json.dumps(document, ensure_ascii=False, indent=2))
    if found.key is None:
        print(status.not_found_line(found, unmask=args.unmask), file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        print("\n".join(status.lookup_lines(found, unmask=args.unmask)))
    return EXIT_OK


def _open_alone(settings: Settings, hint: str) -> Store:
    """The existing store, held by this command alone: refused clearly while serve runs."""
    if not (settings.zns_data_dir / FILE_NAME).exists():
        raise ConfigError(f"there is no zns-bot store in {settings.zns_data_dir} (ZNS_DATA_DIR)")
    try:
        return _open_store(settings)
    except StoreLockedError as exc:
        raise StoreError(f"{exc}: stop `zns-bot serve` first{hint}") from None


def _seal(settings: Settings) -> int:
    with _open_alone(settings, " (it seals past months itself)") as store:
        report = store.archive.run_sync(seal=True)
    if not report.sealed:
        print("nothing to seal: the current audit segment holds no events")
        return EXIT_OK
    print(f"sealed audit segment(s) {', '.join(report.sealed)}; new events start a new one")
    return EXIT_OK


def _confirm(question: str) -> bool:
    print(f"{question} This cannot be undone. Type yes to go on: ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "yes"


def _erase(settings: Settings, args: argparse.Namespace) -> int:
    with _open_alone(settings, "") as store:
        outcome = privacy.erase(
            store,
            args.phone,
            actor=_actor(),
            dry_run=args.dry_run,
            confirm=None if args.yes else _confirm,
        )
    for line in outcome.lines:
        print(line, file=sys.stdout if outcome.ok else sys.stderr)
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _serve(settings: Settings, name_warnings: Sequence[str] = ()) -> int:
    from bot.app import serve  # Slack and the web server load only for this command

    configure_logging(settings.log_level, json=True, secrets=secrets_from_settings(settings))
    for warning in name_warnings:
        logging.getLogger(__name__).warning(warning)
    asyncio.run(serve(settings))
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":  # serve installs its own JSON handler, with redaction
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # A misspelled name is refused before any setting is used: ESMS_SANBOX=1 ignored
        # would make a live, charged send.
        args.name_warnings = check_environment()
        settings = load_settings()
        if args.command != "serve":  # serve logs them, as JSON
            for warning in args.name_warnings:
                print(f"warning: {warning}", file=sys.stderr)
        return _dispatch(args, settings)
    except InputError as exc:
        if args.command != "send":
            print(f"error: {exc}; nothing was changed", file=sys.stderr)
            return EXIT_USAGE
        print("error: the request was not sent:", file=sys.stderr)
        for field_name, problem in (exc.problems or {"input": str(exc)}).items():
            print(f"  - {field_name}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ZNS_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "send":
        return asyncio.run(_send(args, settings))
    if args.command == "check":
        return asyncio.run(_check(settings))
    if args.command == "serve":
        return _serve(settings, args.name_warnings)
    if args.command == "status":
        return _status(settings, args)
    if args.command == "privacy":
        return _erase(settings, args)
    if args.audit_command == "verify":
        return _verify(settings, args)
    if args.audit_command == "seal":
        return _seal(settings)
    return _export(settings, args)


def main() -> None:
    sys.exit(run())
