"""OpenStack integration: the Neutron ML2 mechanism driver, syncers and the DHCP agent."""
