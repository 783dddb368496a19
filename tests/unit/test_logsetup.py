"""The daemons' log channels (calico.logsetup): a file that survives rotation, syslog, one
line per event, per-channel severities, and how Felix and calico-node name them."""

import logging
import os
import socket

import pytest

from calico import logsetup
from calico.felix.config import ConfigLoader
from calico.felix.daemon import configure_logging


@pytest.fixture(autouse=True)
def restore_root():
    root = logging.getLogger()
    level = root.level
    yield
    logsetup.configure("test", logsetup.LogConfig(screen=None, file=None))
    root.setLevel(level)


def _log(name="calico.felix.test"):
    return logging.getLogger(name)


def test_file_is_reopened_after_rotation(tmp_path):
    path = tmp_path / "logs" / "felix.log"
    logsetup.configure("felix", logsetup.LogConfig(screen=None, file_path=str(path)))
    _log().info("before rotation: endpoint %s", "wl-1")
    os.rename(path, tmp_path / "logs" / "felix.log.1")  # what logrotate does
    _log().info("after rotation: endpoint %s", "wl-2")
    assert "wl-1" in (tmp_path / "logs" / "felix.log.1").read_text()
    fresh = path.read_text()
    assert "wl-2" in fresh and "wl-1" not in fresh


def test_one_line_per_event_with_time_level_component(tmp_path):
    path = tmp_path / "felix.log"
    logsetup.configure("felix", logsetup.LogConfig(screen=None, file_path=str(path)))
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        _log().exception("Policy %s failed\nto render", "default.allow-dns")
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert "[ERROR][felix " in line and "calico.felix.test:" in line
    assert "default.allow-dns" in line and "Traceback" in line and "ValueError" in line
    assert line[:4].isdigit() and line[10] == " "  # starts with the date and time


def test_per_channel_severities(tmp_path):
    path = tmp_path / "felix.log"
    logsetup.configure("felix", logsetup.LogConfig(screen="Error", file_path=str(path),
                                                   file="Warning"))
    _log().info("quiet")
    _log().warning("loud")
    text = path.read_text()
    assert "loud" in text and "quiet" not in text


def test_syslog_receives_one_datagram_per_event(tmp_path):
    address = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    try:
        logsetup.configure("felix", logsetup.LogConfig(screen=None, sys="Info",
                                                       syslog_address=address))
        _log().info("Endpoint %s programmed", "host1/cni/c1/eth0")
        _log().debug("not sent")
        got = sock.recv(4096).decode()
    finally:
        sock.close()
    assert got.startswith("<30>felix[")  # facility daemon (3) * 8 + info (6)
    assert "host1/cni/c1/eth0" in got and "[INFO][felix" in got


def test_missing_syslog_socket_is_one_warning_not_a_failure(tmp_path):
    warnings = logsetup.configure("felix", logsetup.LogConfig(
        screen=None, sys="Info", syslog_address=str(tmp_path / "absent")))
    assert len(warnings) == 1 and "not logging to syslog" in warnings[0]


def test_bad_severity_is_named():
    with pytest.raises(ValueError, match="'loud' is not one of"):
        logsetup.level("loud")


def test_felix_parameters_drive_the_channels(tmp_path):
    path = tmp_path / "felix.log"
    env = {"FELIX_LOGFILEPATH": str(path), "FELIX_LOGSEVERITYFILE": "debug",
           "FELIX_LOGSEVERITYSCREEN": "none", "FELIX_LOGSEVERITYSYS": "none"}
    config = ConfigLoader(env=env).load()
    assert config.logSeveritySys == "None" and config.logSeverityScreen == "None"
    configure_logging(config)
    _log().debug("debug line for %s", "ippool p1")
    assert "ippool p1" in path.read_text()
    assert not any(isinstance(h, logging.handlers.SysLogHandler)
                   for h in logging.getLogger().handlers)


def test_felix_file_logging_off_with_none():
    config = ConfigLoader(env={"FELIX_LOGFILEPATH": "none", "FELIX_LOGSEVERITYSYS": "none",
                               "FELIX_LOGSEVERITYSCREEN": "none"}).load()
    configure_logging(config)
    assert not [h for h in logging.getLogger().handlers
                if getattr(h, "_calico_logsetup", False)]


def test_calico_node_environment():
    cfg = logsetup.calico_node_config({"CALICO_LOG_LEVEL": "debug",
                                       "CALICO_LOGFILEPATH": "/var/log/x.log",
                                       "CALICO_LOGSEVERITYSYS": "Warning"})
    assert (cfg.screen, cfg.file_path, cfg.file, cfg.sys) == ("debug", "/var/log/x.log",
                                                              "Info", "Warning")
    empty = logsetup.calico_node_config({})
    assert empty.file_path is None and empty.sys is None
    assert logsetup.calico_node_config({"CALICO_LOGSEVERITYSCREEN": "Error"}).screen == "Error"


@pytest.mark.parametrize("module", ["calico.bgp.daemon", "calico.node.tunneladdr"])
def test_calico_node_children_refuse_a_bad_severity_naming_it(module):
    # calico-node's children read the same variables; a bad one is a usage error, not a crash.
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", module, "--hostname", "h1"],
                         env={"CALICO_LOGSEVERITYSCREEN": "loud", "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "'loud' is not one of" in res.stderr, res.stderr
