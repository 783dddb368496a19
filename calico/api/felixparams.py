"""Felix's configuration parameters: one declarative table, read by two consumers.

Each `Param` names a parameter twice: `name` is Felix's own name (environment variable
`FELIX_<NAME>`, key in felix.cfg; Felix matches it case-insensitively) and `field` is the
FelixConfiguration spec field (its JSON name), or None for parameters that only a local source
may set (how to reach the datastore). `type` says how a value is read and checked, `default` is
Felix's built-in value, and both are in the resource's JSON form, so every source ends up with
one representation:

    type.check(json_value) -> value     a value from a FelixConfiguration resource
    type.parse(text)       -> value     a string from FELIX_<NAME> or a config file

Both raise ValueError (or FieldError) with a reason. Durations are Go duration strings in
canonical form ("1m30s"); in the environment Felix takes a number of seconds (or milliseconds,
for the few `...Millis` parameters). Enumerations are stored with the resource's casing; the
text parser matches case-insensitively, as Felix does ("DROP", "drop" -> "Drop").

The names, defaults and ranges follow Calico's felix/config/config_params.go and the
FelixConfigurationSpec of the projectcalico.org/v3 API. BPF, Wireguard, Windows and flow-log
parameters are accepted for compatibility; this Felix does not act on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .felixtypes import (
    CIDR,
    HOST_ADDRESS,
    HOSTNAME,
    IFACE,
    IFACE_FILTER,
    IP,
    LOG_SEVERITY,
    ON_OFF,
    PORT,
    Bool,
    CommaList,
    ConntrackTimeouts,
    Duration,
    Enum,
    HealthTimeoutOverride,
    IfaceExclude,
    Int,
    KeyValueList,
    ParamType,
    PortRange,
    ProtoPort,
    Regexp,
    Region,
    RouteTableRange,
    RouteTableRanges,
    Str,
    StrMap,
)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per parameter
class Param:
    name: str                 # Felix's name: FELIX_<NAME.upper()>, felix.cfg key
    field: str | None         # FelixConfiguration spec field; None: local sources only
    type: ParamType
    default_text: str | None = None  # in Felix's text form, as config_params.go writes it
    default: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.default_text is not None:
            object.__setattr__(self, "default", self.type.parse(self.default_text))

    @property
    def env_var(self) -> str:
        return "FELIX_" + self.name.upper()


P = Param
B = Bool()
SECS, MILLIS = Duration("s"), Duration("ms")
PATH = Str()
CIDRS = CommaList(CIDR())

PARAMS: tuple[Param, ...] = (
    # -- datastore connection: local sources only (environment, config file) --
    P("DatastoreType", None, Enum(("etcdv3", "kubernetes", "local")), "local"),
    P("FelixHostname", None, Str(HOSTNAME, "hostname")),
    P("EtcdAddr", None, Str(r"[^:/]+:\d+", "host:port"), "127.0.0.1:2379"),
    P("EtcdScheme", None, Enum(("http", "https")), "http"),
    P("EtcdEndpoints", None, CommaList(Str(r"https?://[^,\s]+", "URL"))),
    P("EtcdKeyFile", None, PATH),
    P("EtcdCertFile", None, PATH),
    P("EtcdCaFile", None, PATH),
    P("TyphaAddr", None, Str(r"[^:/]+:\d+", "host:port")),
    # -- dataplane driver and general --
    P("UseInternalDataplaneDriver", "useInternalDataplaneDriver", B, "true"),
    P("DataplaneDriver", "dataplaneDriver", PATH, "calico-iptables-plugin"),
    P("DataplaneWatchdogTimeout", "dataplaneWatchdogTimeout", SECS, "90"),
    P("Ipv6Support", "ipv6Support", B, "true"),
    P("FeatureDetectOverride", "featureDetectOverride", KeyValueList()),
    P("FeatureGates", "featureGates", KeyValueList()),
    P("HealthTimeoutOverrides", "healthTimeoutOverrides", CommaList(HealthTimeoutOverride())),
    # -- logging --
    P("LogPrefix", "logPrefix", Str(), "calico-packet"),
    P("LogFilePath", "logFilePath", PATH, "/var/log/calico/felix.log"),
    P("LogSeverityFile", "logSeverityFile", LOG_SEVERITY, "INFO"),
    P("LogSeverityScreen", "logSeverityScreen", LOG_SEVERITY, "INFO"),
    P("LogSeveritySys", "logSeveritySys", LOG_SEVERITY, "INFO"),
    P("LogDebugFilenameRegex", "logDebugFilenameRegex", Regexp()),
    # -- health, Prometheus, status reporting --
    P("HealthEnabled", "healthEnabled", B, "false"),
    P("HealthHost", "healthHost", Str(HOST_ADDRESS, "host address"), "localhost"),
    P("HealthPort", "healthPort", PORT, "9099"),
    P("PrometheusMetricsEnabled", "prometheusMetricsEnabled", B, "false"),
    P("PrometheusMetricsHost", "prometheusMetricsHost", Str(HOST_ADDRESS, "host address")),
    P("PrometheusMetricsPort", "prometheusMetricsPort", PORT, "9091"),
    P("PrometheusGoMetricsEnabled", "prometheusGoMetricsEnabled", B, "true"),
    P("PrometheusProcessMetricsEnabled", "prometheusProcessMetricsEnabled", B, "true"),
    P("PrometheusWireGuardMetricsEnabled", "prometheusWireGuardMetricsEnabled", B, "true"),
    P("ReportingIntervalSecs", "reportingInterval", SECS, "30"),
    P("ReportingTTLSecs", "reportingTTL", SECS, "90"),
    P("EndpointReportingEnabled", "endpointReportingEnabled", B, "false"),
    P("EndpointReportingDelaySecs", "endpointReportingDelay", SECS, "1"),
    P("EndpointStatusPathPrefix", "endpointStatusPathPrefix", PATH, "/var/run/calico"),
    P("UsageReportingEnabled", "usageReportingEnabled", B, "true"),
    P("UsageReportingInitialDelaySecs", "usageReportingInitialDelay", SECS, "300"),
    P("UsageReportingIntervalSecs", "usageReportingInterval", SECS, "86400"),
    P("OpenstackRegion", "openstackRegion", Region()),
    P("MetadataAddr", "metadataAddr", Str(HOSTNAME, "host name or address"), "127.0.0.1"),
    P("MetadataPort", "metadataPort", PORT, "8775"),
    # -- interfaces, routes --
    # Calico's default is "cali" (OpenStack deployments set "tap"); ours serves both orchestrators
    # out of the box, as DESIGN.md asks: containers' cali* veths and VMs' tap* devices.
    P("InterfacePrefix", "interfacePrefix", Str(rf"{IFACE}(,{IFACE})*", "interface prefix list"),
      "cali,tap"),
    P("InterfaceExclude", "interfaceExclude", IfaceExclude(), "kube-ipvs0"),
    P("InterfaceRefreshInterval", "interfaceRefreshInterval", SECS, "90"),
    P("MTUIfacePattern", "mtuIfacePattern", Regexp(),
      "^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"),
    P("RequireMTUFile", "requireMTUFile", B, "false"),
    P("RouteRefreshInterval", "routeRefreshInterval", SECS, "90"),
    P("RouteSource", "routeSource", Enum(("WorkloadIPs", "CalicoIPAM"), False), "CalicoIPAM"),
    P("RouteTableRange", "routeTableRange", RouteTableRange()),
    P("RouteTableRanges", "routeTableRanges", RouteTableRanges()),
    P("RouteSyncDisabled", "routeSyncDisabled", B, "false"),
    P("DeviceRouteSourceAddress", "deviceRouteSourceAddress", IP(4)),
    P("DeviceRouteSourceAddressIPv6", "deviceRouteSourceAddressIPv6", IP(6)),
    # Calico's default is 3 ("boot"), which `ip route add` also uses: we default to 80, a
    # number no other component uses, so Felix never mistakes another's route for its own.
    P("DeviceRouteProtocol", "deviceRouteProtocol", Int(0, 255), "80"),
    P("RemoveExternalRoutes", "removeExternalRoutes", B, "true"),
    P("ProgramClusterRoutes", "programClusterRoutes", ON_OFF, "Disabled"),
    P("IPForwarding", "ipForwarding", ON_OFF, "Enabled"),
    P("NetlinkTimeoutSecs", "netlinkTimeout", SECS, "10"),
    # -- policy dataplane: actions, chains, marks, refresh --
    P("ChainInsertMode", "chainInsertMode", Enum(("Insert", "Append"), False), "insert"),
    P("DefaultEndpointToHostAction", "defaultEndpointToHostAction",
      Enum(("Drop", "Accept", "Return")), "DROP"),
    P("IptablesFilterAllowAction", "iptablesFilterAllowAction", Enum(("Accept", "Return")),
      "ACCEPT"),
    P("IptablesMangleAllowAction", "iptablesMangleAllowAction", Enum(("Accept", "Return")),
      "ACCEPT"),
    P("IptablesFilterDenyAction", "iptablesFilterDenyAction", Enum(("Drop", "Reject")), "DROP"),
    P("IptablesBackend", "iptablesBackend", Enum(("Auto", "NFT", "Legacy")), "auto"),
    P("IptablesRefreshInterval", "iptablesRefreshInterval", SECS, "180"),
    P("IptablesPostWriteCheckIntervalSecs", "iptablesPostWriteCheckInterval", SECS, "5"),
    P("IptablesLockFilePath", "iptablesLockFilePath", PATH, "/run/xtables.lock"),
    P("IptablesLockTimeoutSecs", "iptablesLockTimeout", SECS, "0"),
    P("IptablesLockProbeIntervalMillis", "iptablesLockProbeInterval", MILLIS, "50"),
    P("IptablesMarkMask", "iptablesMarkMask", Int(0, 2**32 - 1), "0xffff0000"),
    P("IptablesNATOutgoingInterfaceFilter", "iptablesNATOutgoingInterfaceFilter",
      Str(IFACE_FILTER, "interface filter")),
    P("IpsetsRefreshInterval", "ipsetsRefreshInterval", SECS, "90"),
    P("MaxIpsetSize", "maxIpsetSize", Int(1), "1048576"),
    P("NFTablesMode", "nftablesMode", Enum(("Disabled", "Enabled", "Auto")), "Auto"),
    P("NftablesRefreshInterval", "nftablesRefreshInterval", SECS, "180"),
    P("NftablesFilterAllowAction", "nftablesFilterAllowAction", Enum(("Accept", "Return")),
      "ACCEPT"),
    P("NftablesMangleAllowAction", "nftablesMangleAllowAction", Enum(("Accept", "Return")),
      "ACCEPT"),
    P("NftablesFilterDenyAction", "nftablesFilterDenyAction", Enum(("Drop", "Reject")), "DROP"),
    P("NftablesMarkMask", "nftablesMarkMask", Int(0, 2**32 - 1), "0xffff0000"),
    P("DisableConntrackInvalidCheck", "disableConntrackInvalidCheck", B, "false"),
    P("FailsafeInboundHostPorts", "failsafeInboundHostPorts", CommaList(ProtoPort()),
      "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"),
    P("FailsafeOutboundHostPorts", "failsafeOutboundHostPorts", CommaList(ProtoPort()),
      "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"),
    P("KubeNodePortRanges", "kubeNodePortRanges", CommaList(PortRange(), max_items=7),
      "30000:32767"),
    P("PolicySyncPathPrefix", "policySyncPathPrefix", PATH),
    P("LogActionRateLimit", None, Str(r"([1-9]\d{0,3}/(second|minute|hour|day))?", "rate")),
    P("ServiceLoopPrevention", "serviceLoopPrevention", Enum(("Drop", "Reject", "Disabled")),
      "Drop"),
    P("WorkloadSourceSpoofing", "workloadSourceSpoofing", Enum(("Disabled", "Any"), False),
      "Disabled"),
    P("XDPEnabled", "xdpEnabled", B, "true"),
    P("GenericXDPEnabled", "genericXDPEnabled", B, "false"),
    P("XDPRefreshInterval", "xdpRefreshInterval", SECS, "90"),
    # -- encapsulation: IPIP, VXLAN, Wireguard --
    P("IpInIpEnabled", "ipipEnabled", B),
    P("IpInIpMtu", "ipipMTU", Int(0), "0"),
    P("VXLANEnabled", "vxlanEnabled", B),
    P("VXLANMTU", "vxlanMTU", Int(0), "0"),
    P("VXLANMTUV6", "vxlanMTUV6", Int(0), "0"),
    P("VXLANPort", "vxlanPort", PORT, "4789"),
    P("VXLANVNI", "vxlanVNI", Int(0, 2**24 - 1), "4096"),
    P("AllowVXLANPacketsFromWorkloads", "allowVXLANPacketsFromWorkloads", B, "false"),
    P("AllowIPIPPacketsFromWorkloads", "allowIPIPPacketsFromWorkloads", B, "false"),
    P("ExternalNodesCIDRList", "externalNodesList", CommaList(CIDR(4))),
    P("WireguardEnabled", "wireguardEnabled", B, "false"),
    P("WireguardEnabledV6", "wireguardEnabledV6", B, "false"),
    P("WireguardListeningPort", "wireguardListeningPort", Int(1, 65535), "51820"),
    P("WireguardListeningPortV6", "wireguardListeningPortV6", Int(1, 65535), "51821"),
    P("WireguardRoutingRulePriority", "wireguardRoutingRulePriority", Int(1, 32765), "99"),
    P("WireguardInterfaceName", "wireguardInterfaceName", Str(IFACE, "interface name"),
      "wireguard.cali"),
    P("WireguardInterfaceNameV6", "wireguardInterfaceNameV6", Str(IFACE, "interface name"),
      "wg-v6.cali"),
    P("WireguardMTU", "wireguardMTU", Int(0), "0"),
    P("WireguardMTUV6", "wireguardMTUV6", Int(0), "0"),
    P("WireguardHostEncryptionEnabled", "wireguardHostEncryptionEnabled", B, "false"),
    P("WireguardPersistentKeepAlive", "wireguardKeepAlive", SECS, "0"),
    P("WireguardThreadingEnabled", "wireguardThreadingEnabled", B, "false"),
    # -- NAT --
    P("NATPortRange", "natPortRange", PortRange()),
    P("NATOutgoingAddress", "natOutgoingAddress", IP(4)),
    P("NATOutgoingExclusions", "natOutgoingExclusions", Enum(("IPPoolsOnly", "IPPoolsAndHostIPs")),
      "IPPoolsOnly"),
    P("FloatingIPs", "floatingIPs", ON_OFF, "Disabled"),
    # -- BPF dataplane: accepted for compatibility, not acted on --
    P("BPFEnabled", "bpfEnabled", B, "false"),
    P("BPFDisableUnprivileged", "bpfDisableUnprivileged", B, "true"),
    P("BPFLogLevel", "bpfLogLevel", Enum(("Off", "Info", "Debug")), "off"),
    P("BPFConntrackLogLevel", "bpfConntrackLogLevel", Enum(("Off", "Debug")), "off"),
    P("BPFConntrackCleanupMode", "bpfConntrackMode", Enum(("Auto", "Userspace", "BPFProgram")),
      "Auto"),
    P("BPFConntrackTimeouts", "bpfConntrackTimeouts", ConntrackTimeouts()),
    P("BPFLogFilters", "bpfLogFilters", StrMap(IFACE)),
    P("BPFCTLBLogFilter", "bpfCTLBLogFilter", Str()),
    P("BPFDataIfacePattern", "bpfDataIfacePattern", Regexp(),
      "^((en|wl|ww|sl|ib)[Popsx].*|(eth|wlan|wwan|bond).*)"),
    P("BPFL3IfacePattern", "bpfL3IfacePattern", Regexp()),
    P("BPFConnectTimeLoadBalancingEnabled", "bpfConnectTimeLoadBalancingEnabled", B),
    P("BPFConnectTimeLoadBalancing", "bpfConnectTimeLoadBalancing",
      Enum(("TCP", "Enabled", "Disabled")), "TCP"),
    P("BPFHostNetworkedNATWithoutCTLB", "bpfHostNetworkedNATWithoutCTLB", ON_OFF, "Enabled"),
    P("BPFExternalServiceMode", "bpfExternalServiceMode", Enum(("Tunnel", "DSR")), "tunnel"),
    P("BPFDSROptoutCIDRs", "bpfDSROptoutCIDRs", CIDRS),
    P("BPFExtToServiceConnmark", "bpfExtToServiceConnmark", Int(0, 2**32 - 1), "0"),
    P("BPFKubeProxyIptablesCleanupEnabled", "bpfKubeProxyIptablesCleanupEnabled", B, "true"),
    P("BPFKubeProxyMinSyncPeriod", "bpfKubeProxyMinSyncPeriod", SECS, "1"),
    P("BPFKubeProxyEndpointSlicesEnabled", "bpfKubeProxyEndpointSlicesEnabled", B),
    P("BPFPSNATPorts", "bpfPSNATPorts", PortRange(), "20000:29999"),
    P("BPFMapSizeNATFrontend", "bpfMapSizeNATFrontend", Int(1), "65536"),
    P("BPFMapSizeNATBackend", "bpfMapSizeNATBackend", Int(1), "262144"),
    P("BPFMapSizeNATAffinity", "bpfMapSizeNATAffinity", Int(1), "65536"),
    P("BPFMapSizeRoute", "bpfMapSizeRoute", Int(1), "262144"),
    P("BPFMapSizeConntrack", "bpfMapSizeConntrack", Int(1), "512000"),
    P("BPFMapSizePerCPUConntrack", "bpfMapSizePerCpuConntrack", Int(0), "0"),
    P("BPFMapSizeConntrackScaling", "bpfMapSizeConntrackScaling",
      Enum(("Disabled", "DoubleIfFull"), False), "DoubleIfFull"),
    P("BPFMapSizeConntrackCleanupQueue", "bpfMapSizeConntrackCleanupQueue", Int(1), "100000"),
    P("BPFMapSizeIPSets", "bpfMapSizeIPSets", Int(1), "1048576"),
    P("BPFMapSizeIfState", "bpfMapSizeIfState", Int(1), "1000"),
    P("BPFHostConntrackBypass", "bpfHostConntrackBypass", B, "false"),
    P("BPFEnforceRPF", "bpfEnforceRPF", Enum(("Disabled", "Strict", "Loose"), False), "Loose"),
    P("BPFPolicyDebugEnabled", "bpfPolicyDebugEnabled", B, "true"),
    P("BPFForceTrackPacketsFromIfaces", "bpfForceTrackPacketsFromIfaces",
      CommaList(Str(IFACE_FILTER, "interface filter")), "docker+"),
    P("BPFDisableGROForIfaces", "bpfDisableGROForIfaces", Regexp()),
    P("BPFExcludeCIDRsFromNAT", "bpfExcludeCIDRsFromNAT", CIDRS),
    P("BPFExportBufferSizeMB", "bpfExportBufferSizeMB", Int(1), "1"),
    P("BPFRedirectToPeer", "bpfRedirectToPeer", Enum(("Enabled", "Disabled", "L2Only")),
      "Enabled"),
    P("BPFProfiling", "bpfProfiling", ON_OFF, "Disabled"),
    # -- flow logs, cloud, Windows, Go runtime, debugging --
    P("FlowLogsFlushInterval", "flowLogsFlushInterval", SECS, "300"),
    P("FlowLogsCollectorDebugTrace", "flowLogsCollectorDebugTrace", B, "false"),
    P("FlowLogsGoldmaneServer", "flowLogsGoldmaneServer", Str()),
    P("FlowLogsLocalReporter", "flowLogsLocalReporter", ON_OFF, "Disabled"),
    P("FlowLogsPolicyEvaluationMode", "flowLogsPolicyEvaluationMode",
      Enum(("None", "Continuous")), "Continuous"),
    P("AWSSrcDstCheck", "awsSrcDstCheck", Enum(("DoNothing", "Enable", "Disable")), "DoNothing"),
    P("WindowsManageFirewallRules", "windowsManageFirewallRules", ON_OFF, "Disabled"),
    P("SidecarAccelerationEnabled", "sidecarAccelerationEnabled", B, "false"),
    P("GoGCThreshold", "goGCThreshold", Int(-1), "40"),
    P("GoMemoryLimitMB", "goMemoryLimitMB", Int(-1), "-1"),
    P("GoMaxProcs", "goMaxProcs", Int(-1), "-1"),
    P("DebugMemoryProfilePath", "debugMemoryProfilePath", PATH),
    P("DebugDisableLogDropping", "debugDisableLogDropping", B, "false"),
    P("DebugSimulateCalcGraphHangAfter", "debugSimulateCalcGraphHangAfter", SECS, "0"),
    P("DebugSimulateDataplaneHangAfter", "debugSimulateDataplaneHangAfter", SECS, "0"),
    P("DebugSimulateDataplaneApplyDelay", "debugSimulateDataplaneApplyDelay", SECS, "0"),
    P("DebugHost", "debugHost", Str(HOST_ADDRESS, "host address"), "localhost"),
    P("DebugPort", "debugPort", PORT),
)

BY_NAME: dict[str, Param] = {p.name.lower(): p for p in PARAMS}
BY_FIELD: dict[str, Param] = {p.field: p for p in PARAMS if p.field}


def param_for_env(var: str) -> Param | None:
    """The parameter an environment variable sets (`FELIX_LOGSEVERITYSCREEN`), if any."""
    if not var.upper().startswith("FELIX_"):
        return None
    return BY_NAME.get(var[len("FELIX_"):].lower())
