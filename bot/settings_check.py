"""Misspelled and unknown setting names in the environment and `.env`, found before any use."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from bot.config import Settings
from bot.errors import ConfigError

# Names zns-bot owns: a key with one of these prefixes is meant for it (or for Bolt).
PREFIXES = ("ZNS_", "ESMS_", "SLACK_")
MAX_DISTANCE = 2  # ESMS_SANBOX, ESMS_SANDBOXX, ZNS_APROVERS, SLAKC_BOT_TOKEN...

# What Bolt (and its OAuth flow) read from the environment itself, none of it used here: see
# slack_bolt/app/async_app.py, oauth/async_oauth_settings.py, adapter/aws_lambda/*.
BOLT_NAMES = frozenset(
    {
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "SLACK_SCOPES",
        "SLACK_USER_SCOPES",
        "SLACK_REDIRECT_URI",
        "SLACK_INSTALL_PATH",
        "SLACK_REDIRECT_URI_PATH",
        "SLACK_VERIFICATION_TOKEN",
    }
)
BOLT_PREFIXES = ("SLACK_INSTALLATION_", "SLACK_STATE_")  # the S3 installation/state stores
# Names other Slack tools read (slack-ruby-client, Danger, slackcat, CI notifiers): one edit
# from SLACK_APP_TOKEN, which would switch the bot to Socket Mode, so never a suggestion.
FOREIGN_NAMES = frozenset({"SLACK_API_TOKEN", "SLACK_TOKEN", "SLACK_WEBHOOK", "SLACK_WEBHOOK_URL"})
# A short name is near too many others (PGHOST, HOME and POST to HOST or PORT): one edit only.
SHORT_NAME = 4


def distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
    substitutions and swaps of two neighbours each count one."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


@dataclass
class NameReport:
    """What `check_names` found: refusals (likely typos) and warnings (ignored names)."""

    refused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_refused(self) -> None:
        """One ConfigError naming every likely typo (one line, as every setting error)."""
        if self.refused:
            raise ConfigError("; ".join(self.refused))


def _closest(name: str, known: Iterable[str]) -> str | None:
    near = [
        (d, k)
        for k in sorted(known)
        if (d := distance(name, k)) <= (1 if len(k) <= SHORT_NAME else MAX_DISTANCE)
    ]
    return min(near)[1] if near else None


def _is_bolts(name: str) -> bool:
    return name in BOLT_NAMES or name.startswith(BOLT_PREFIXES)


def check_names(
    known: Iterable[str], environ: Mapping[str, object], dotenv: Mapping[str, object]
) -> NameReport:
    """Sort the keys of the environment and of `.env` against the `known` setting names.

    Settings are case-insensitive, so names are compared upper-cased. A key close to a known
    name is refused: in the environment when the known name has a zns-bot prefix (the
    environment is shared with everything else, and `HOME` is two edits from `HOST`), in
    `.env` (zns-bot's own file) whatever the name. Other unknown prefixed keys are warnings.
    """
    known_names = {k.upper() for k in known}
    prefixed = {k for k in known_names if k.startswith(PREFIXES)}
    report = NameReport()
    for where, keys, candidates in (
        ("the environment", environ, prefixed),
        (".env", dotenv, known_names),
    ):
        for name in sorted({str(k).upper() for k in keys}):
            if name in known_names:
                continue
            if name in FOREIGN_NAMES:
                report.warnings.append(
                    f"{name} (in {where}) is another Slack tool's setting, not zns-bot's; ignored"
                )
                continue
            if _is_bolts(name):
                report.warnings.append(
                    f"{name} (in {where}) is a Slack Bolt setting not used by zns-bot; ignored"
                )
                continue
            closest = _closest(name, candidates)
            if closest is not None:
                report.refused.append(
                    f"unknown setting {name} (in {where}): did you mean {closest}?"
                )
            elif name.startswith(PREFIXES):
                report.warnings.append(f"unknown setting {name} (in {where}); ignored")
    return report


def read_dotenv(
    files: str | Path | Sequence[str | Path] | None, encoding: str | None = "utf-8"
) -> dict[str, str | None]:
    """The keys of the `.env` file(s) as pydantic-settings reads them (python-dotenv, the same
    paths relative to the working directory, missing files skipped)."""
    if files is None:
        return {}
    found: dict[str, str | None] = {}
    for name in [files] if isinstance(files, str | Path) else files:
        file = Path(name).expanduser()
        try:
            if file.is_file():
                found.update(dotenv_values(file, encoding=encoding))
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else f"not {encoding} text"
            raise ConfigError(f"cannot read the settings file {file}: {why}") from None
    return found


def check_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Refuse likely typos among the names in the environment and `.env` (one ConfigError);
    return a warning line for each other unknown name. Known names are the settings model's
    fields, so a setting added there is known here too."""
    config = Settings.model_config
    report = check_names(
        Settings.model_fields,
        os.environ if environ is None else environ,
        read_dotenv(config.get("env_file"), config.get("env_file_encoding")),
    )
    report.raise_refused()
    return report.warnings
