"""Calico's DHCP agent for OpenStack: datastore -> dnsmasq per network on each compute host."""
