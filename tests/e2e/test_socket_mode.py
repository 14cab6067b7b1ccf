"""Socket Mode end to end: the running bot with no public URL, driven over the stand-in's link."""

import signal
from datetime import datetime, timedelta

import aiohttp
import httpx
import pytest

from bot.jobs.polling import DeliveryPoller
from bot.jobs.scheduler import poll_job
from standins.esms import ORDER_TEMPLATE
from standins.process import BotProcess, standin_env
from standins.socket_driver import SocketModeDriver
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    ORDER,
    bot_settings,
    open_order_modal,
    request_order,
    running_bot,
    texts,
)

LINK_WAIT = 10.0  # the first link waits for the bot's start-up (template warm-up included)


def newest_link(slack_standin) -> int:
    """The number of the newest link so far: a bot about to start opens a higher one."""
    return max((c.number for c in slack_standin.socket_mode.connections()), default=0)


@pytest.fixture
async def bot(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(
        tmp_path / "data",
        slack_standin,
        esms_standin,
        slack_app_token=slack_standin.socket_mode.app_token,
        slack_signing_secret=None,  # Socket Mode verifies nothing over HTTP
        public_base_url=None,  # no public URL: delivery results come by polling only
    )
    socket = slack_standin.socket_mode
    # A link left by an earlier test's bot may still be closing: wait for a newer one.
    newest = newest_link(slack_standin)
    async with running_bot(settings, slack_standin, esms_standin, over_socket=True) as running:
        await socket.await_link(after=newest, wait=LINK_WAIT)
        yield running


def poller_at(bot, moment: datetime) -> DeliveryPoller:
    return DeliveryPoller(bot.runtime.service, bot.runtime.tracker, clock=lambda: moment)


async def test_the_flow_completes_across_a_disconnect_and_reconnection(
    bot, slack_standin, esms_standin
):
    socket = slack_standin.socket_mode
    first = socket.live()  # the bot's: links are numbered in order, a stale one is older
    card = await request_order(bot)  # /zns, the modal, a template chosen, submitted: envelopes

    # Slack recycles the link between the request and its approval: the bot must ask
    # apps.connections.open for a new one and carry on there.
    await socket.disconnect("refresh_requested")
    second = await socket.await_link(after=first.number)
    assert (await socket.await_closed(first)).disconnect_reasons == ["refresh_requested"]

    response = await bot.decide(await bot.review(card), "approve")
    assert response.status_code == 200 and response.text == ""  # an ack with no payload
    assert "SMSID" in await bot.thread_text(card, "Accepted by eSMS")
    record = bot.record_for(card)
    (sent,) = esms_standin.sends()
    assert "CallbackUrl" not in sent  # nowhere for eSMS to call back to

    esms_standin.deliver(record["sms_id"])
    accepted_at = datetime.fromisoformat(record["accepted_at"])
    assert await poll_job(poller_at(bot, accepted_at + timedelta(seconds=31))) == 1
    assert "090****484" in await bot.thread_text(card, "Delivered")
    assert "Delivered" in str(slack_standin.message(APPROVAL_CHANNEL, card["ts"])["blocks"])

    envelopes = socket.envelopes()
    assert socket.unacked() == []
    assert [e.type for e in envelopes] == [
        "slash_commands",  # /zns
        "interactive",  # the template typed: the select's options load (block_suggestion)
        "interactive",  # the template chosen
        "interactive",  # the request submitted
        "interactive",  # Review clicked
        "interactive",  # the approval submitted
    ]
    assert [e.connection for e in envelopes] == [first.number] * 4 + [second.number] * 2
    # One ticket per link, each from apps.connections.open with the app-level token.
    assert [c.ok for c in slack_standin.calls("apps.connections.open")] == [True, True]
    assert socket.tickets_issued == 2 and socket.refused == []
    health = await bot.http.get("/healthz")
    assert health.status_code == 200 and health.json()["socket_mode"] == "connected"


async def test_a_link_closed_without_warning_is_replaced_before_the_next_click(bot, slack_standin):
    socket = slack_standin.socket_mode
    card = await request_order(bot)
    review = await bot.review(card)

    dropped = await socket.drop()  # no `disconnect` first: the server just went away
    assert dropped.disconnect_reasons == []
    await socket.await_link(after=dropped.number)

    response = await bot.decide(review, "approve")
    assert response.status_code == 200 and response.text == ""
    await bot.thread_text(card, "Accepted by eSMS")
    assert socket.unacked() == []
    assert len(slack_standin.calls("apps.connections.open")) == 2


async def test_a_view_submission_is_answered_with_errors_in_its_ack(bot, slack_standin):
    view = await open_order_modal(bot)
    response = await bot.submit_request(view, phone="12345", params=ORDER)
    assert response.json()["response_action"] == "errors"
    assert "phone" in response.json()["errors"]
    envelope = bot.last_envelope
    assert envelope.accepts_response_payload and envelope.ack_payload == response.json()
    assert bot.store.sends.count_by_state().get("pending_approval", 0) == 0
    assert slack_standin.socket_mode.unacked() == []


async def test_slack_events_over_http_are_refused_while_the_socket_serves(bot):
    response = await bot.http.post("/slack/events", content=b"command=%2Fzns")
    assert response.status_code == 404
    help_ = await bot.slash("help")  # the same command over the socket: usage in its ack
    assert help_.status_code == 200 and "/zns 0901888484" in help_.json()["text"]


async def test_a_ticket_opens_one_link_only(slack_standin):
    socket = slack_standin.socket_mode
    auth = {"Authorization": f"Bearer {socket.app_token}"}
    async with httpx.AsyncClient() as http:
        opened = await http.post(slack_standin.api_url + "apps.connections.open", headers=auth)
    url = opened.json()["url"]
    assert url.startswith(f"ws://127.0.0.1:{slack_standin.port}/link/?ticket=")

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as link:
            hello = await link.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["connection_info"]["app_id"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)  # the same ticket again, while the first is open
            assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)  # nor once the first link has closed
    assert len(await socket.await_refused(2)) == 2
    assert socket.tickets_issued == 1


async def test_zns_bot_serve_is_healthy_only_once_connected_and_closes_its_link(
    tmp_path, slack_standin, esms_standin
):
    socket = slack_standin.socket_mode
    before = newest_link(slack_standin)
    env = standin_env(
        slack_standin,
        esms_standin,
        tmp_path / "data",
        slack_app_token=socket.app_token,
        slack_signing_secret=None,
        public_base_url=None,
    )
    process = BotProcess(env, cwd=tmp_path, log_path=tmp_path / "bot.log")
    await process.start()  # /healthz answers 200 only once the socket is connected
    try:
        link = await socket.await_link(after=before)
        driver = SocketModeDriver(
            process.url, slack=slack_standin, esms=esms_standin, signing_secret=""
        )
        try:
            assert (await driver.slash()).status_code == 200
            view = await driver.modal()
            found = await driver.suggest(view, "template_select", ORDER_TEMPLATE)
            assert ORDER_TEMPLATE in texts(found)  # the options load answered over the socket
        finally:
            await driver.aclose()
    finally:
        # uvicorn re-raises the SIGTERM it handled, once its shutdown is done
        assert process.stop() == -signal.SIGTERM
    # The shutdown closed the link itself (1000), rather than leaving it to the TCP reset.
    assert (await socket.await_closed(link)).close_code == 1000
    assert socket.unacked() == []


async def test_the_app_home_opens_over_the_socket(bot):
    await request_order(bot)
    home = bot.home(APPROVER)
    await home.open()  # an events_api envelope, acked
    view = await home.next()
    reviews = [
        b["accessory"]["value"]
        for b in view["blocks"]
        if (b.get("accessory") or {}).get("action_id") == "zns_review"
    ]
    assert reviews == [bot.runtime.store.sends.in_states({"pending_approval"})[0]["id"]]
