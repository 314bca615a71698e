"""Normal command output without library chatter: Dagster's beta/preview notices and the
INFO lines of HTTP clients are for developers, not for someone running a command."""

from __future__ import annotations

import logging
import warnings

_CHATTY_LOGGERS = ("httpx", "httpcore", "huggingface_hub", "urllib3", "filelock")


def quiet_libraries() -> None:
    """Silences Dagster's beta/preview/superseded warnings and chatty library loggers."""
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
