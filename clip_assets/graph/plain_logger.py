"""One plain line per message for runs started from the command line.

Dagster's console logger prints each event with its date, job, run id, pid and event type:
right for a daemon's log, noise in a terminal. ``plain_console`` prints what a person reads:
the time, the stage, the text; a failed step adds the first line of its error.
"""

from __future__ import annotations

import logging
import sys
import time

from dagster import Field, InitLoggerContext, LoggerDefinition, logger


class PlainFormatter(logging.Formatter):
    """``HH:MM:SS  stage  message`` from a Dagster log record."""

    def format(self, record: logging.LogRecord) -> str:
        meta = record.__dict__.get("dagster_meta", {})
        step = (meta.get("step_key") or "").rsplit("__", 1)[-1]
        text = meta.get("orig_message") or record.getMessage()
        event = meta.get("dagster_event")
        error = getattr(getattr(event, "event_specific_data", None), "error", None)
        if error is not None and getattr(error, "message", None):
            text = f"{text} {error.message.strip().splitlines()[0]}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp}  {step:<12} {text}" if step else f"{stamp}  {text}"


@logger(
    config_schema={"log_level": Field(str, default_value="INFO", is_required=False)},
    description="One plain line per message: time, stage, text.",
)
def plain_console(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.Logger("clip_assets.run", level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(PlainFormatter())
    log.addHandler(handler)
    return log


#: The loggers of CLI-driven runs, and the run config that turns them on at INFO.
PLAIN_LOGGERS: dict[str, LoggerDefinition] = {"console": plain_console}
PLAIN_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
