"""Virtual switches: bridges, uplinks, VLANs, taps for VM NICs and NAT (issue 5)."""
