"""FelixConfiguration and the Felix parameter table it is generated from."""

from pathlib import Path

import pytest

from calico import api
from calico.api.felixconfig import FelixConfigurationSpec
from calico.api.felixparams import BY_FIELD, BY_NAME, PARAMS, param_for_env

INFRA = Path(__file__).parents[2] / "fixtures" / "manifests" / "infra"


def felix(spec, name="default"):
    return api.validate({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                         "metadata": {"name": name}, "spec": spec})


def test_table_is_consistent():
    names = [p.name.lower() for p in PARAMS]
    fields = [p.field for p in PARAMS if p.field]
    assert len(names) == len(set(names)) and len(fields) == len(set(fields))
    assert set(FelixConfigurationSpec.model_fields) == set(fields)
    for p in PARAMS:  # every default is valid for its own type, in both forms
        if p.default is not None:
            assert p.type.check(p.default) == p.default, p.name


@pytest.mark.parametrize("field", [
    "logSeverityScreen", "logSeverityFile", "logSeveritySys", "logFilePath", "healthEnabled",
    "healthHost", "healthPort", "prometheusMetricsEnabled", "prometheusMetricsPort",
    "endpointReportingEnabled", "endpointReportingDelay", "reportingInterval", "reportingTTL",
    "interfacePrefix", "interfaceExclude", "deviceRouteProtocol", "routeTableRanges",
    "iptablesRefreshInterval", "nftablesRefreshInterval", "nftablesMode", "iptablesBackend",
    "defaultEndpointToHostAction", "failsafeInboundHostPorts", "failsafeOutboundHostPorts",
    "ipipEnabled", "ipipMTU", "vxlanEnabled", "vxlanMTU", "vxlanMTUV6", "vxlanVNI", "vxlanPort",
    "natOutgoingAddress", "natPortRange", "natOutgoingExclusions", "bpfEnabled", "bpfLogLevel",
    "wireguardEnabled", "openstackRegion", "metadataAddr", "chainInsertMode",
])
def test_linux_felix_parameters_are_present(field):
    assert field in BY_FIELD


@pytest.mark.parametrize("name, default", [
    ("ReportingIntervalSecs", "30s"), ("ReportingTTLSecs", "1m30s"),
    ("IptablesLockProbeIntervalMillis", "50ms"), ("LogSeverityScreen", "Info"),
    ("DefaultEndpointToHostAction", "Drop"), ("InterfacePrefix", "cali,tap"),
    ("IptablesMarkMask", 0xFFFF0000), ("HealthPort", 9099), ("PrometheusMetricsPort", 9091),
    ("DeviceRouteProtocol", 80), ("VXLANVNI", 4096), ("NFTablesMode", "Auto"),
    ("KubeNodePortRanges", ["30000:32767"]), ("ChainInsertMode", "Insert"),
    ("IpInIpEnabled", None), ("DatastoreType", "local"),  # ours: the embedded store
])
def test_felix_defaults(name, default):
    assert BY_NAME[name.lower()].default == default


def test_failsafe_defaults_in_resource_form():
    ports = BY_NAME["failsafeinboundhostports"].default
    assert ports[0] == {"protocol": "TCP", "port": 22}
    assert {"protocol": "UDP", "port": 68} in ports and len(ports) == 9


@pytest.mark.parametrize("var, text, value", [
    ("FELIX_LOGSEVERITYSCREEN", "debug", "Debug"),
    ("FELIX_logSeverityScreen", "WARNING", "Warning"),
    ("FELIX_DEFAULTENDPOINTTOHOSTACTION", "ACCEPT", "Accept"),
    ("FELIX_REPORTINGINTERVALSECS", "90", "1m30s"),
    ("FELIX_REPORTINGINTERVALSECS", "0.5", "500ms"),
    ("FELIX_IPTABLESLOCKPROBEINTERVALMILLIS", "100", "100ms"),
    ("FELIX_HEALTHENABLED", "true", True),
    ("FELIX_HEALTHENABLED", "no", False),
    ("FELIX_IPTABLESMARKMASK", "0xff000000", 0xFF000000),
    ("FELIX_INTERFACEPREFIX", "tap", "tap"),
    ("FELIX_FAILSAFEINBOUNDHOSTPORTS", "tcp:22,udp:10.0.0.0/8:68,[fd00::/8]:22",
     [{"protocol": "TCP", "port": 22}, {"protocol": "UDP", "port": 68, "net": "10.0.0.0/8"},
      {"protocol": "TCP", "port": 22, "net": "fd00::/8"}]),
    ("FELIX_FAILSAFEOUTBOUNDHOSTPORTS", "none", []),
    ("FELIX_ROUTETABLERANGE", "1-250", {"min": 1, "max": 250}),
    ("FELIX_ROUTETABLERANGES", "1-250,300-400", [{"min": 1, "max": 250}, {"min": 300, "max": 400}]),
    ("FELIX_EXTERNALNODESCIDRLIST", "10.0.0.0/8, 192.168.1.1", ["10.0.0.0/8", "192.168.1.1"]),
    ("FELIX_BPFLOGFILTERS", "all=tcp,eth0=udp", {"all": "tcp", "eth0": "udp"}),
    ("FELIX_HEALTHTIMEOUTOVERRIDES", "InternalDataplaneMainLoop=120",
     [{"name": "InternalDataplaneMainLoop", "timeout": "2m0s"}]),
    ("FELIX_NFTABLESMODE", "enabled", "Enabled"),
])
def test_environment_text_parses_to_resource_form(var, text, value):
    assert param_for_env(var).type.parse(text) == value


@pytest.mark.parametrize("var, text", [
    ("FELIX_LOGSEVERITYSCREEN", "loud"), ("FELIX_HEALTHPORT", "70000"),
    ("FELIX_HEALTHENABLED", "maybe"), ("FELIX_REPORTINGINTERVALSECS", "soon"),
    ("FELIX_ROUTETABLERANGE", "0-10"), ("FELIX_FAILSAFEINBOUNDHOSTPORTS", "icmp:22"),
])
def test_environment_text_errors(var, text):
    with pytest.raises(ValueError):
        param_for_env(var).type.parse(text)


def test_unknown_environment_variable():
    assert param_for_env("FELIX_NOSUCHTHING") is None
    assert param_for_env("PATH") is None


def test_resource_stores_canonical_values_and_maps_to_params():
    res = felix({"reportingInterval": "90s", "iptablesLockProbeInterval": "0.05s",
                 "ipipMTU": 1440, "logSeverityScreen": "Debug"})
    assert res.to_dict()["spec"] == {"reportingInterval": "1m30s", "ipipMTU": 1440,
                                     "logSeverityScreen": "Debug",
                                     "iptablesLockProbeInterval": "50ms"}
    assert {p.name: v for p, v in res.spec.params().items()} == {
        "ReportingIntervalSecs": "1m30s", "IpInIpMtu": 1440, "LogSeverityScreen": "Debug",
        "IptablesLockProbeIntervalMillis": "50ms"}


def test_nothing_is_defaulted_in_the_resource():
    assert felix({}).to_dict()["spec"] == {}


def test_per_node_configuration():
    assert felix({}, "node.host-1").node == "host-1"
    assert felix({}).node is None


@pytest.mark.parametrize("spec, path, reason", [
    ({"reportingInterval": 90}, "spec.reportingInterval", "is not a valid duration"),
    ({"reportingInterval": "90"}, "spec.reportingInterval", "is not a valid duration"),
    ({"reportingTTL": "-5s"}, "spec.reportingTTL", "must not be negative"),
    ({"logSeverityScreen": "INFO"}, "spec.logSeverityScreen", "is not one of"),
    ({"logSeverityFile": "Verbose"}, "spec.logSeverityFile", "is not one of"),
    ({"defaultEndpointToHostAction": "Allow"}, "spec.defaultEndpointToHostAction",
     "is not one of Drop, Accept, Return"),
    ({"iptablesFilterAllowAction": "Drop"}, "spec.iptablesFilterAllowAction", "is not one of"),
    ({"nftablesFilterDenyAction": "Accept"}, "spec.nftablesFilterDenyAction", "is not one of"),
    ({"iptablesBackend": "nft"}, "spec.iptablesBackend", "is not one of"),
    ({"nftablesMode": "On"}, "spec.nftablesMode", "is not one of"),
    ({"chainInsertMode": "prepend"}, "spec.chainInsertMode", "is not one of"),
    ({"bpfLogLevel": False}, "spec.bpfLogLevel", "is not one of"),
    ({"healthPort": 65536}, "spec.healthPort", "out of range"),
    ({"healthPort": "9099"}, "spec.healthPort", "is not an integer"),
    ({"healthEnabled": "true"}, "spec.healthEnabled", "is not a boolean"),
    ({"healthHost": "a b"}, "spec.healthHost", "host address"),
    ({"prometheusMetricsHost": "x" * 65}, "spec.prometheusMetricsHost", "host address"),
    ({"vxlanVNI": 2**24}, "spec.vxlanVNI", "out of range"),
    ({"ipipMTU": -1}, "spec.ipipMTU", "out of range"),
    ({"iptablesMarkMask": 2**32}, "spec.iptablesMarkMask", "out of range"),
    ({"interfacePrefix": "cali tap"}, "spec.interfacePrefix", "interface prefix"),
    ({"interfaceExclude": "kube-ipvs0,/ /"}, "spec.interfaceExclude", "interface names"),
    ({"failsafeInboundHostPorts": [{"protocol": "ICMP", "port": 1}]},
     "spec.failsafeInboundHostPorts[0].protocol", "TCP, UDP or SCTP"),
    ({"failsafeOutboundHostPorts": [{"port": 53}, {"port": 65536}]},
     "spec.failsafeOutboundHostPorts[1].port", "valid port"),
    ({"failsafeInboundHostPorts": [{"port": 22, "net": "10.0.0.0/33"}]},
     "spec.failsafeInboundHostPorts[0].net", "valid CIDR"),
    ({"failsafeInboundHostPorts": "tcp:22"}, "spec.failsafeInboundHostPorts", "is not a list"),
    ({"kubeNodePortRanges": ["30000:32767", "http"]}, "spec.kubeNodePortRanges[1]",
     "port range"),
    ({"kubeNodePortRanges": ["1:2"] * 8}, "spec.kubeNodePortRanges", "more than 7"),
    ({"natPortRange": "65000:1000"}, "spec.natPortRange", "min <= max"),
    ({"natOutgoingAddress": "fd00::1"}, "spec.natOutgoingAddress", "IPv4 address"),
    ({"deviceRouteSourceAddressIPv6": "10.0.0.1"}, "spec.deviceRouteSourceAddressIPv6",
     "IPv6 address"),
    ({"externalNodesList": ["fd00::/8"]}, "spec.externalNodesList[0]", "IPv4 CIDR"),
    ({"routeTableRange": {"min": 0, "max": 10}}, "spec.routeTableRange", "1..250"),
    ({"routeTableRange": {"min": 1, "max": 10}, "routeTableRanges": [{"min": 1, "max": 10}]},
     "spec.routeTableRange", "routeTableRanges is also set"),
    ({"routeTableRanges": [{"min": 1, "max": 100000}]}, "spec.routeTableRanges",
     "too many tables"),
    ({"routeTableRanges": [{"min": 10, "max": 1}]}, "spec.routeTableRanges[0]", "min <= max"),
    ({"openstackRegion": "Region_1"}, "spec.openstackRegion", "is not a valid name"),
    ({"openstackRegion": "r" * 47}, "spec.openstackRegion", "too long"),
    ({"featureDetectOverride": "SNATFullyRandom"}, "spec.featureDetectOverride", "key=value"),
    ({"logDebugFilenameRegex": "(["}, "spec.logDebugFilenameRegex", "regular expression"),
    ({"healthTimeoutOverrides": [{"name": "a/b", "timeout": "1s"}]},
     "spec.healthTimeoutOverrides[0].name", "valid name"),
    ({"healthTimeoutOverrides": [{"name": "a", "timeout": "1"}]},
     "spec.healthTimeoutOverrides[0].timeout", "valid duration"),
    ({"bpfLogFilters": {"not an iface!": "tcp"}}, "spec.bpfLogFilters.not an iface!",
     "valid key"),
    ({"bpfConntrackTimeouts": {"tcpForever": "1h"}}, "spec.bpfConntrackTimeouts.tcpForever",
     "known timer"),
    ({"wireguardListeningPort": 0}, "spec.wireguardListeningPort", "out of range"),
    ({"goGCThreshold": -2}, "spec.goGCThreshold", "out of range"),
    ({"ipv6supported": True}, "spec.ipv6supported", "is not a known field"),
])
def test_invalid_felix_configurations(spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        felix(spec)
    assert err.value.path == path
    assert reason in str(err.value)
    assert str(err.value).startswith(f'FelixConfiguration "default": {path}: ')


def test_fixture_manifests_load_and_round_trip():
    resources = api.load((INFRA / "felixconfigurations.yaml").read_text())
    assert [r.name for r in resources] == ["default", "node.rack1-host1"]
    for res in resources:
        assert api.load(api.dump_yaml([res]))[0] == res
        assert api.validate(res.to_dict()).to_dict() == res.to_dict()
    default = resources[0].spec
    assert default.reportingTTL == "1m30s" and default.nftablesRefreshInterval == "3m0s"
    assert default.failsafeInboundHostPorts[3] == {"protocol": "TCP", "port": 2379,
                                                   "net": "10.0.0.0/8"}
