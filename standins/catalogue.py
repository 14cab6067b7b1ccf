"""A big, realistic eSMS catalogue for the stand-in: more OAs and templates than a select holds."""

from __future__ import annotations

from standins.esms import (
    DEMO_OAID,
    OFFICIAL_ACCOUNTS,
    SECOND_OAID,
    TEMPLATES,
    EsmsStandIn,
    StandInParam,
    StandInTemplate,
)

BIG_OA_COUNT = 130
DEMO_OA_POSITION = 116  # 0-based: the default ESMS_OAID is the 117th OA, past Slack's 100
GENERATED_TEMPLATES = 150
REPEAT_TEMPLATE = "400001"  # customer_name appears twice
OVER_SLACK_TEMPLATE = "400002"  # a parameter eSMS allows 4,000 characters
NO_LIMIT_TEMPLATE = "400003"  # a parameter GetTemplate gives no Limit
OVER_SLACK_LIMIT = 4000

_BRANDS = ("Điện máy", "Thời trang", "Nhà thuốc", "Siêu thị", "Mỹ phẩm", "Sách", "Nội thất")
_CITIES = (
    "Hà Nội",
    "Hồ Chí Minh",
    "Đà Nẵng",
    "Hải Phòng",
    "Cần Thơ",
    "Huế",
    "Nha Trang",
    "Đà Lạt",
    "Vũng Tàu",
    "Quy Nhơn",
)
# Ten subjects × five details × three branches = 150 names; names of one subject and
# detail differ only in the branch, at the very end, beyond what an option shows.
_SUBJECTS = (
    "Thông báo xác nhận",
    "Cập nhật trạng thái",
    "Nhắc thanh toán",
    "Xác nhận hủy",
    "Thông báo hoàn tiền cho",
    "Nhắc nhận hàng của",
    "Khảo sát mức độ hài lòng về",
    "Xác nhận đổi trả",
    "Thông báo giao thành công",
    "Cảm ơn quý khách đã đặt",
)
_DETAILS = (
    "đơn hàng trực tuyến kèm mã vận đơn và thời gian giao dự kiến",
    "đơn hàng trả góp qua thẻ tín dụng cùng lịch thanh toán từng kỳ",
    "đơn hàng đặt trước sản phẩm mới ra mắt trong tháng này",
    "đơn hàng giao nhanh trong hai giờ tại khu vực nội thành",
    "đơn hàng có quà tặng kèm theo chương trình khách hàng thân thiết",
)
_BRANCHES = ("cửa hàng Quận 1", "cửa hàng Quận 3", "cửa hàng Quận 7")


def big_oas() -> list[tuple[str, str]]:
    """130 OAs (id, name): the demo OA is the 117th, the second demo OA the 41st."""
    oas = [
        (
            str(4_100_000_000_000_000_000 + n * 7_919),
            f"{_BRANDS[n % len(_BRANDS)]} {_CITIES[n % len(_CITIES)]} – chi nhánh số {n + 1:03}",
        )
        for n in range(BIG_OA_COUNT)
    ]
    names = dict(OFFICIAL_ACCOUNTS)
    oas[DEMO_OA_POSITION] = (DEMO_OAID, names[DEMO_OAID])
    oas[40] = (SECOND_OAID, names[SECOND_OAID])
    return oas


def _generated() -> list[StandInTemplate]:
    templates = []
    for n, (subject, detail, branch) in enumerate(
        (s, d, b) for s in _SUBJECTS for d in _DETAILS for b in _BRANCHES
    ):
        templates.append(
            StandInTemplate(
                str(500_001 + n),
                f"{subject} {detail} tại {branch}",
                DEMO_OAID,
                (
                    StandInParam("customer_name", 1, 30, "type_text"),
                    StandInParam("order_code", 2, 20, "type_text"),
                ),
                "<p>Xin chào &lt;customer_name&gt;, đơn hàng &lt;order_code&gt;.</p>",
                price=330.0,
            )
        )
    return templates


SPECIAL_TEMPLATES: tuple[StandInTemplate, ...] = (
    StandInTemplate(
        REPEAT_TEMPLATE,
        "Đơn hàng đã giao thành công – lời chào và lời cảm ơn cuối tin đều gọi tên khách hàng",
        DEMO_OAID,
        (
            StandInParam("customer_name", 1, 30, "type_text"),
            StandInParam("order_code", 2, 20, "type_text"),
            StandInParam("customer_name", 3, 30, "type_text"),
        ),
        "<p>Chào &lt;customer_name&gt;, đơn &lt;order_code&gt; đã giao. "
        "Cảm ơn &lt;customer_name&gt;!</p>",
        price=330.0,
    ),
    StandInTemplate(
        OVER_SLACK_TEMPLATE,
        "Thư cảm ơn cá nhân hóa gửi khách hàng sau khi mua sắm, lời nhắn dài do nhân viên tự soạn",
        DEMO_OAID,
        (
            StandInParam("customer_name", 1, 30, "type_text"),
            StandInParam("message", 2, OVER_SLACK_LIMIT, "type_text"),
        ),
        "<p>&lt;customer_name&gt; thân mến, &lt;message&gt;</p>",
        price=440.0,
    ),
    StandInTemplate(
        NO_LIMIT_TEMPLATE,
        "Mã giới thiệu bạn bè nhận ưu đãi – mã do hệ thống đối tác cấp, eSMS không ghi giới hạn",
        DEMO_OAID,
        (StandInParam("referral_code", 1, None, "type_text"),),
        "<p>Mã giới thiệu của bạn: &lt;referral_code&gt;</p>",
        price=330.0,
    ),
)


def big_templates() -> list[StandInTemplate]:
    """The default templates, then 150 generated ENABLE ones and three with unusual limits."""
    return [*TEMPLATES, *_generated(), *SPECIAL_TEMPLATES]


def use_big_catalogue(standin: EsmsStandIn) -> None:
    """Make `standin` serve the big catalogue until its next reset()."""
    standin.use_catalogue(big_oas(), big_templates())
