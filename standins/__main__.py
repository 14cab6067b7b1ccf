"""`python -m standins` (`make standins`): both stand-ins, and a .env for zns-bot against them."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from standins import esms, slack
from standins.driver import APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL
from standins.process import SIGNING_SECRET
from standins.servers import run_until_stopped

DATA_DIR = "demo-data/standins"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m standins",
        description=(
            "Run the Slack Web API and eSMS stand-ins on loopback until Ctrl-C, and print a "
            "complete .env for `zns-bot check`, `send` and `serve` against them. For each "
            "one's own options: python -m standins.slack --help, python -m standins.esms "
            "--help."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address both listen on")
    parser.add_argument("--slack-port", type=int, default=slack.DEFAULT_PORT, help="0 = any")
    parser.add_argument("--esms-port", type=int, default=esms.DEFAULT_PORT, help="0 = any")
    parser.add_argument(
        "--auto-deliver",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="eSMS delivers each send after SECONDS (numbers ending 000 fail with -118)",
    )
    args = parser.parse_args(argv)
    slack_standin = slack.SlackStandIn(users=slack.DEMO_USERS, host=args.host, port=args.slack_port)
    esms_standin = esms.EsmsStandIn(
        host=args.host, port=args.esms_port, auto_deliver=args.auto_deliver
    )

    @contextlib.contextmanager
    def running() -> Iterator[None]:
        with slack_standin, esms_standin:
            yield

    def banner() -> str:
        settings = [
            *slack.env_lines(slack_standin),
            # the stand-in does not sign: any secret will do, the bot only needs one
            f"SLACK_SIGNING_SECRET={SIGNING_SECRET}",
            *esms.env_lines(esms_standin),
            f"ZNS_APPROVAL_CHANNEL={APPROVAL_CHANNEL}",
            f"ZNS_NOTIFY_CHANNEL={NOTIFY_CHANNEL}",
            f"ZNS_APPROVERS={APPROVER}",
            # apart from data/, a real store's default; `make clean-demo` removes it
            f"ZNS_DATA_DIR={DATA_DIR}",
        ]
        people = ", ".join(f"{k} ({v})" for k, v in slack_standin.user_names().items())
        return (
            f"Slack stand-in {slack_standin.url}, eSMS stand-in {esms_standin.url}\n"
            "A .env for zns-bot against them:\n"
            + "\n".join(settings)
            + f"\nSlack members: {people}\nCtrl-C stops both."
        )

    run_until_stopped(running(), banner, f"{args.host}:{args.slack_port}/{args.esms_port}")


if __name__ == "__main__":
    main()
