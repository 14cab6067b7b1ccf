"""The `zns-bot` command line: serve, send, check, and audit verify/export."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings, load_settings
from bot.errors import ZNS_ERRORS, ConfigError, InputError
from bot.esms.client import EsmsClient
from bot.ops.logs import configure_logging, secrets_from_settings
from bot.phones import mask_phone
from bot.service import SendService
from bot.templates import TemplateCatalogue
from storage.sends import SendRecord, SendState
from storage.store import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zns-bot", description="Send Zalo ZNS messages through eSMS.vn, with an audit log."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    send = sub.add_parser("send", help="send one ZNS message now (recorded and audited)")
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

    sub.add_parser("check", help="validate the settings and show the eSMS balance")
    sub.add_parser("serve", help="run the Slack app, callbacks and scheduler (HOST:PORT)")

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the audit log's hash chain")
    export = audit_sub.add_parser("export", help="write the audit log to a CSV file")
    export.add_argument("--csv", required=True, type=Path, metavar="FILE")
    export.add_argument("--unmask", action="store_true", help="write full phone numbers")
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
    return Store.open(settings.zns_data_dir, fsync=settings.zns_fsync)


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
    settings.require("esms_api_key", "esms_secret_key")
    async with EsmsClient.from_settings(settings) as client:
        balance = await client.balance()
        print(f"eSMS: credentials OK, balance {balance.balance:,.0f} VND")
        if settings.esms_oaid:
            oas = {oa.oaid: oa.name for oa in await client.list_oas()}
            if settings.esms_oaid not in oas:
                known = ", ".join(f"{k} ({v})" for k, v in oas.items()) or "none"
                print(
                    f"error: ESMS_OAID {settings.esms_oaid} is not an OA of this eSMS account; "
                    f"known OAs: {known}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            print(f"Zalo OA: {settings.esms_oaid} ({oas[settings.esms_oaid]})")
        else:
            print("Zalo OA: ESMS_OAID is not set; every send must name its OA")
    with _open_store(settings) as store:
        store.check_writable()
        print(f"store: {store.path} is writable")
    return EXIT_OK


def _verify(settings: Settings) -> int:
    with _open_store(settings) as store:
        result = store.audit.verify()
    if result.ok:
        print(f"audit log OK: {result.count} events, hash chain intact")
        return EXIT_OK
    print(f"audit log BROKEN ({result.count} events):", file=sys.stderr)
    for problem in result.problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_FAILED


EXPORT_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "action",
    "send_id",
    "phone",
    "template_id",
    "from",
    "to",
    "reason",
    "data",
    "hash",
)


def _export(settings: Settings, path: Path, unmask: bool) -> int:
    """Write every audit event, joined with its send's phone and template."""
    count = 0
    with _open_store(settings) as store, path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for event in store.audit.iter_events():
            send = store.sends.find(event["send_id"]) if event.get("send_id") else None
            phone = (send or {}).get("phone") or ""
            row = {
                **event,
                "phone": phone if unmask else mask_phone(phone),
                "template_id": (send or {}).get("template_id") or "",
                "from": event.get("from_state") or "",
                "to": event.get("to_state") or "",
                "data": json.dumps(event.get("data"), ensure_ascii=False, sort_keys=True),
            }
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
            count += 1
    masking = "phones unmasked" if unmask else "phones masked"
    print(f"wrote {count} audit events to {path} ({masking})")
    return EXIT_OK


def _serve(settings: Settings) -> int:
    from bot.app import serve  # Slack and the web server load only for this command

    configure_logging(settings.log_level, json=True, secrets=secrets_from_settings(settings))
    asyncio.run(serve(settings))
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":  # serve installs its own JSON handler, with redaction
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        if args.command == "send":
            return asyncio.run(_send(args, settings))
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "serve":
            return _serve(settings)
        if args.audit_command == "verify":
            return _verify(settings)
        return _export(settings, args.csv, args.unmask)
    except InputError as exc:
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


def main() -> None:
    sys.exit(run())
