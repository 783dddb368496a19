"""Logging for the daemons (Felix, calico-node), as operators of Calico expect it.

`configure(component, LogConfig(...))` sets up to three channels on the root logger, each
with its own severity (`None` turns a channel off):

- **screen** (stderr: the journal under systemd), `logSeverityScreen`;
- **file** at `logFilePath`, `logSeverityFile`, through a `WatchedFileHandler`: when
  logrotate moves or deletes the file, the next line goes to a new file at the same path
  (no SIGHUP, no copytruncate needed); a directory that is missing is created;
- **syslog** (`/dev/log`, facility daemon), `logSeveritySys`; skipped with one warning
  when there is no syslog socket.

Every event is one line, also when its message or traceback has several (newlines become
` | `), with the time, the level, the component and the logger, then the message, which names
the resource or key concerned:

    2026-12-04 18:00:00.123 [INFO][felix 4242] calico.felix.daemon: Endpoint ... programming

`calico_node_config(env)` reads calico-node's variables (CALICO_LOGSEVERITYSCREEN or
CALICO_LOG_LEVEL, CALICO_LOGFILEPATH, CALICO_LOGSEVERITYFILE, CALICO_LOGSEVERITYSYS); its
children (the BGP daemon, the tunnel-address allocator) inherit that environment and log to
the same channels under their own component names (one O_APPEND line per write).

Calling `configure` again (Felix applies new log settings live) replaces only the handlers
it installed. Severities are Calico's names, any case: Trace (= Debug here), Debug, Info,
Warning, Error, Fatal; `none` or empty turns a channel off.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "critical": logging.CRITICAL}
SYSLOG_SOCKET = "/dev/log"
_MARK = "_calico_logsetup"  # attribute on the handlers we own


def level(name: str | None) -> int | None:
    """A Calico severity as a logging level; None for none/empty. ValueError otherwise."""
    if name is None or str(name).strip().lower() in ("", "none"):
        return None
    try:
        return LEVELS[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f"log severity {name!r} is not one of Trace, Debug, Info, Warning, "
                         "Error, Fatal, none") from None


@dataclass(frozen=True)
class LogConfig:
    screen: str | None = "Info"
    file_path: str | None = None  # None or "none": no file
    file: str | None = "Info"
    sys: str | None = None
    syslog_address: str = SYSLOG_SOCKET


def calico_node_config(env: Mapping[str, str]) -> LogConfig:
    """calico-node's (and its children's) channels, named as Felix's parameters:
    CALICO_LOGSEVERITYSCREEN (or CALICO_LOG_LEVEL; default Info), CALICO_LOGFILEPATH (default
    none: the journal has stderr), CALICO_LOGSEVERITYFILE (Info), CALICO_LOGSEVERITYSYS
    (default none)."""
    return LogConfig(
        screen=env.get("CALICO_LOGSEVERITYSCREEN") or env.get("CALICO_LOG_LEVEL") or "Info",
        file_path=env.get("CALICO_LOGFILEPATH") or None,
        file=env.get("CALICO_LOGSEVERITYFILE") or "Info",
        sys=env.get("CALICO_LOGSEVERITYSYS") or None)


class OneLineFormatter(logging.Formatter):
    """`time [LEVEL][component pid] logger: message`, always on one line."""

    def __init__(self, component: str, with_time: bool = True) -> None:
        prefix = "%(asctime)s.%(msecs)03d " if with_time else ""
        super().__init__(f"{prefix}[%(levelname)s][{component} %(process)d] "
                         "%(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(line for line in super().format(record).splitlines() if line)


def configure(component: str, config: LogConfig) -> list[str]:
    """Install the channels; returns warnings about channels that could not be opened
    (also logged once they are up)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    warnings: list[str] = []
    handlers: list[tuple[logging.Handler, int]] = []
    screen = level(config.screen)
    if screen is not None:
        handlers.append((logging.StreamHandler(), screen))
    file_level = level(config.file)
    if config.file_path and config.file_path.lower() != "none" and file_level is not None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(config.file_path)), exist_ok=True)
            handlers.append((logging.handlers.WatchedFileHandler(config.file_path),
                             file_level))
        except OSError as err:
            warnings.append(f"log file {config.file_path} cannot be opened "
                            f"({err.strerror}); not logging to a file")
    sys_level = level(config.sys)
    if sys_level is not None and not os.path.exists(config.syslog_address):
        warnings.append(f"syslog socket {config.syslog_address} does not exist; not logging "
                        "to syslog")
    elif sys_level is not None:
        try:
            syslog = logging.handlers.SysLogHandler(
                config.syslog_address, logging.handlers.SysLogHandler.LOG_DAEMON,
                socktype=socket.SOCK_DGRAM)
            syslog.ident = f"{component}[{os.getpid()}]: "
            handlers.append((syslog, sys_level))
        except OSError as err:
            warnings.append(f"syslog socket {config.syslog_address} cannot be used "
                            f"({err.strerror}); not logging to syslog")
    for handler, lvl in handlers:
        setattr(handler, _MARK, True)
        handler.setLevel(lvl)
        is_syslog = isinstance(handler, logging.handlers.SysLogHandler)
        handler.setFormatter(OneLineFormatter(component, with_time=not is_syslog))
        root.addHandler(handler)
    root.setLevel(min((lvl for _, lvl in handlers), default=logging.CRITICAL))
    for text in warnings:
        logging.getLogger(f"calico.{component}").warning("%s", text)
    return warnings
