"""zns-bot: send Zalo ZNS template messages through eSMS.vn from Slack, with approval and audit."""

# The only copy: pyproject.toml reads it from here ([tool.hatch.version]).
__version__ = "0.1.0"
