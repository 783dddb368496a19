"""Felix's config loader: precedence env > file > node.<host> > default > table, typed values,
invalid values logged and skipped, restart-or-live classification."""

from __future__ import annotations

import logging

import pytest

from calico.api import validate
from calico.felix import messages as m
from calico.felix.calc import CalcGraph
from calico.felix.config import LIVE_PARAMS, ConfigLoader, lookup
from calico.felix.daemon import dataplane_config

KEY = "/calico/resources/v3/projectcalico.org/felixconfigurations/"


def datastore(hostname: str = "h1", **resources: dict) -> dict[str, str]:
    """The ConfigUpdate the calc graph emits for these FelixConfiguration specs."""
    graph = CalcGraph(hostname)
    for name, spec in resources.items():
        name = name.replace("_", ".")
        res = validate({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                        "metadata": {"name": name}, "spec": spec})
        graph.on_update(KEY + name, res)
    updates = [msg for msg in graph.flush() if isinstance(msg, m.ConfigUpdate)]
    return dict(updates[-1].config) if updates else {}


def write_cfg(tmp_path, text: str) -> str:
    path = tmp_path / "felix.cfg"
    path.write_text(text)
    return str(path)


def test_table_defaults_when_nothing_is_set():
    cfg = ConfigLoader("h1", env={}).load()
    assert cfg.healthPort == 9099 and cfg.source("healthPort") == "default"
    assert cfg.healthHost == "localhost"
    assert cfg.interfacePrefix == "cali,tap"
    assert cfg.routeRefreshInterval == 90.0  # durations are float seconds
    assert cfg.raw("routeRefreshInterval") == "1m30s"
    assert cfg.prometheusMetricsPort == 9091 and cfg.prometheusMetricsEnabled is False
    assert cfg.region == "no-region"


def test_attribute_access_by_field_or_felix_name_any_case():
    cfg = ConfigLoader(env={"FELIX_HEALTHPORT": "1234"}).load()
    assert cfg.healthPort == cfg.HealthPort == cfg.get("healthport") == 1234
    with pytest.raises(AttributeError):
        _ = cfg.noSuchParameter


def test_full_precedence_env_file_host_global_default(tmp_path):
    ds = datastore(default={"healthPort": 1001, "reportingInterval": "10s",
                            "logPrefix": "global", "interfacePrefix": "g"},
                   node_h1={"healthPort": 1002, "reportingInterval": "20s",
                            "logPrefix": "per-host"})
    path = write_cfg(tmp_path, "[global]\nHealthPort = 1003\nLogPrefix = file\n")
    cfg = ConfigLoader("h1", env={"FELIX_HEALTHPORT": "1004"}, config_file=path).load(ds)
    assert (cfg.healthPort, cfg.source("healthPort")) == (1004, "env")
    assert (cfg.logPrefix, cfg.source("logPrefix")) == ("file", "file")
    assert (cfg.reportingInterval, cfg.source("reportingInterval")) == (20.0, "datastore")
    assert cfg.interfacePrefix == "g"  # only the global resource sets it
    assert cfg.source("healthHost") == "default"


def test_other_hosts_config_is_not_ours():
    ds = datastore(default={"healthPort": 1001}, node_h2={"healthPort": 2002})
    assert ConfigLoader("h1", env={}).load(ds).healthPort == 1001


def test_env_names_are_case_insensitive_and_take_felix_text_forms():
    cfg = ConfigLoader(env={"felix_healthport": "1", "FELIX_RouteRefreshInterval": "2.5",
                            "FELIX_IPV6SUPPORT": "no",
                            "FELIX_DEFAULTENDPOINTTOHOSTACTION": "accept",
                            "FELIX_FAILSAFEINBOUNDHOSTPORTS": "tcp:22,udp:10.0.0.0/8:68",
                            "FELIX_IPTABLESREFRESHINTERVAL": "1m"}).load()
    assert cfg.healthPort == 1
    assert cfg.routeRefreshInterval == 2.5
    assert cfg.ipv6Support is False
    assert cfg.defaultEndpointToHostAction == "Accept"
    assert cfg.failsafeInboundHostPorts == [{"protocol": "TCP", "port": 22},
                                           {"protocol": "UDP", "port": 68, "net": "10.0.0.0/8"}]
    assert cfg.iptablesRefreshInterval == 60.0  # Go syntax accepted from a local source


def test_invalid_values_are_logged_with_name_and_value_and_fall_through(tmp_path, caplog):
    ds = datastore(default={"healthPort": 1001})
    path = write_cfg(tmp_path, "[global]\nHealthPort = 70000\nIpv6Support = perhaps\n")
    with caplog.at_level(logging.WARNING, logger="calico.felix.config"):
        cfg = ConfigLoader("h1", env={"FELIX_HEALTHPORT": "port", "FELIX_NOSUCHTHING": "x",
                                      "FELIX_ROUTEREFRESHINTERVAL": "soon"},
                           config_file=path).load(ds)
    assert (cfg.healthPort, cfg.source("healthPort")) == (1001, "datastore")
    assert cfg.ipv6Support is True and cfg.routeRefreshInterval == 90.0
    text = caplog.text
    assert "HealthPort: 'port'" in text and "HealthPort: '70000'" in text
    assert "Ipv6Support: 'perhaps'" in text and "RouteRefreshInterval: 'soon'" in text
    assert "FELIX_NOSUCHTHING" in text


def test_datastore_may_not_set_local_only_parameters(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = ConfigLoader(env={}).load({"DatastoreType": "kubernetes"})
    assert cfg.datastoreType == "local"  # our default: the embedded store
    assert "only be set locally" in caplog.text


def test_config_file_reads_global_section_only(tmp_path, caplog):
    path = write_cfg(tmp_path, "[global]\nInterfacePrefix = tap\n[log]\nLogPrefix = x\n")
    with caplog.at_level(logging.WARNING):
        cfg = ConfigLoader(env={}, config_file=path).load()
    assert cfg.interfacePrefix == "tap" and cfg.logPrefix == "calico-packet"
    assert "[log] ignored" in caplog.text


def test_unreadable_or_broken_config_file_is_not_fatal(tmp_path, caplog):
    broken = write_cfg(tmp_path, "HealthPort = 1\n")  # no section header
    with caplog.at_level(logging.WARNING):
        assert ConfigLoader(env={}, config_file=broken).load().healthPort == 9099
        missing = str(tmp_path / "nope.cfg")
        assert ConfigLoader(env={}, config_file=missing).load().healthPort == 9099
    assert "not valid INI" in caplog.text and "cannot be read" in caplog.text


def test_datastore_values_of_every_shape_round_trip():
    ds = datastore(default={"failsafeInboundHostPorts": [{"protocol": "UDP", "port": 53}],
                            "externalNodesList": ["10.0.0.0/8", "192.168.0.0/16"],
                            "routeTableRanges": [{"min": 1, "max": 250}],
                            "ipv6Support": False, "deviceRouteProtocol": 80,
                            "chainInsertMode": "Append", "openstackRegion": "r1"})
    cfg = ConfigLoader(env={}).load(ds)
    assert cfg.failsafeInboundHostPorts == [{"protocol": "UDP", "port": 53}]
    assert cfg.externalNodesList == ["10.0.0.0/8", "192.168.0.0/16"]
    assert cfg.routeTableRanges == [{"min": 1, "max": 250}]
    assert cfg.ipv6Support is False and cfg.deviceRouteProtocol == 80
    assert cfg.region == "region-r1"


def test_changed_and_live_classification():
    loader = ConfigLoader("h1", env={})
    base = loader.load(datastore(default={"reportingInterval": "10s"}))
    live = loader.load(datastore(default={"reportingInterval": "20s",
                                          "routeRefreshInterval": "5s"}))
    restart = loader.load(datastore(default={"reportingInterval": "10s",
                                             "interfacePrefix": "tap"}))
    assert [p.name for p in live.changed(base)] == ["ReportingIntervalSecs",
                                                    "RouteRefreshInterval"]
    assert all(p.name.lower() in LIVE_PARAMS for p in live.changed(base))
    assert [p.name for p in restart.changed(base)] == ["InterfacePrefix"]
    assert lookup("InterfacePrefix").name.lower() not in LIVE_PARAMS
    assert base.changed(loader.load(datastore(default={"reportingInterval": "10s"}))) == []


def test_env_override_hides_datastore_changes():
    loader = ConfigLoader("h1", env={"FELIX_INTERFACEPREFIX": "cali"})
    a = loader.load(datastore(default={"interfacePrefix": "tap"}))
    b = loader.load(datastore(default={"interfacePrefix": "veth"}))
    assert b.changed(a) == []  # env wins either way: no restart needed


def test_dataplane_config_text_for_the_managers():
    cfg = ConfigLoader(env={"FELIX_FAILSAFEINBOUNDHOSTPORTS": "tcp:22,udp:10.0.0.0/8:68",
                            "FELIX_FAILSAFEOUTBOUNDHOSTPORTS": "none",
                            "FELIX_ROUTEREFRESHINTERVAL": "2"}).load()
    text = dataplane_config(cfg).config
    assert text["InterfacePrefix"] == "cali,tap"
    assert text["FailsafeInboundHostPorts"] == "tcp:22,udp:10.0.0.0/8:68"
    assert text["FailsafeOutboundHostPorts"] == "none"
    assert text["RouteRefreshInterval"] == "2s"
    assert text["Ipv6Support"] == "true"
    assert "DeviceRouteProtocol" not in text  # the table's default (3) is not imposed
    set_proto = ConfigLoader(env={"FELIX_DEVICEROUTEPROTOCOL": "81"}).load()
    assert dataplane_config(set_proto).config["DeviceRouteProtocol"] == "81"
