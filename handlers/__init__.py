"""Slack listeners and Block Kit builders: parse the payload, call bot/, render the answer."""
