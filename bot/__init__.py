"""zns-bot: send Zalo ZNS template messages through eSMS.vn from Slack, with approval and audit."""

__version__ = "0.1.0"
