"""The local test kit: eSMS and Slack stand-ins, signed Slack payloads, a driver, the demo.

Never imported by the application (an import-linter contract says so) and not in the wheel.
"""
