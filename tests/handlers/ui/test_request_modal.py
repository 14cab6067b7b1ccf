"""The request modal: type-ahead OA and template selects, and inputs Slack accepts."""

from bot.esms.types import OfficialAccount, ParamType, Template, TemplateParam
from handlers.ui.blocks import _text_input, option_text, request_modal

OAS = [OfficialAccount(str(4_100_000_000_000_000_000 + n), f"OA số {n}") for n in range(130)]
REPEATING = Template(
    id="400001",
    name="Đơn hàng đã giao",
    oaid=OAS[116].oaid,
    params=(
        TemplateParam("customer_name", 1, 30),
        TemplateParam("message", 2, 4000),
        TemplateParam("customer_name", 3, 30),
        TemplateParam("code", 4, None),
        TemplateParam("when", 5, 10, ParamType.DATE),
    ),
)


def modal_blocks(template=REPEATING, oaid=OAS[116].oaid):
    view = request_modal(metadata={"oaid": oaid}, oas=OAS, templates=[template], template=template)
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}, view


def test_oa_and_template_are_type_ahead_selects_showing_the_chosen_ones():
    blocks, _ = modal_blocks()
    oa, template = blocks["oaid"]["element"], blocks["template"]["element"]
    for element in (oa, template):
        assert element["type"] == "external_select" and element["min_query_length"] == 1
        assert "options" not in element
    # the 117th OA: a static select of 100 could not have offered it
    assert oa["initial_option"] == {
        "text": {"type": "plain_text", "text": f"OA số 116 ({OAS[116].oaid})", "emoji": True},
        "value": OAS[116].oaid,
    }
    assert template["initial_option"]["value"] == "400001"


def test_a_repeated_parameter_gets_one_input_and_every_block_id_is_unique():
    _, view = modal_blocks()
    ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i.startswith("param:")] == [
        "param:customer_name",
        "param:message",
        "param:code",
        "param:when",
    ]


def test_max_length_stays_within_slacks_range_and_the_hint_explains_the_difference():
    blocks, _ = modal_blocks()
    message = blocks["param:message"]
    assert message["element"]["max_length"] == 3000
    assert message["hint"]["text"] == "eSMS allows 4,000 characters; Slack's box takes 3,000."
    assert message["label"]["text"] == "message (text, max 3,000)"
    assert blocks["param:customer_name"]["element"]["max_length"] == 30
    assert "hint" not in blocks["param:customer_name"]
    code = blocks["param:code"]  # eSMS gave no limit: unknown, so none is set
    assert "max_length" not in code["element"] and code["label"]["text"] == "code (text)"
    assert blocks["param:when"]["element"]["placeholder"]["text"] == "dd/MM/yyyy"


def test_labels_hints_and_placeholders_are_shortened_at_a_word_within_slacks_limits():
    long = "tên khách hàng &amp; mã đơn " * 120  # 3,240 characters
    block = _text_input("b", long, hint=long, placeholder=long).to_dict()
    label, hint = block["label"]["text"], block["hint"]["text"]
    placeholder = block["element"]["placeholder"]["text"]
    assert len(label) <= 2000 and len(hint) <= 2000 and len(placeholder) <= 150
    for text in (label, hint, placeholder):
        kept = text.removesuffix("…")
        assert text.endswith("…") and long.startswith(kept)
        assert long[len(kept)] == " "  # cut between words, so never inside "&amp;"


def test_option_text_never_splits_an_escape_or_a_letter_from_its_accents():
    ident = "500001"  # leaves 66 characters for the name
    escaped = "x" * 62 + "&amp;" + "y" * 20  # no space: the cut would fall inside "&amp;"
    assert option_text(escaped, ident) == "x" * 62 + "… (500001)"
    accented = "o\u031b\u0300" * 40  # "ờ" written as a letter and two combining marks
    text = option_text(accented, ident)
    assert len(text) <= 75 and text == "o\u031b\u0300" * 21 + "… (500001)"
