"""Bolt listeners, each module exposing register(app): parse, call bot/, render."""
