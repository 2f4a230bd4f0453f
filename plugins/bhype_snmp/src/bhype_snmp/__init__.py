"""bHype snmp plugin: SNMP traps for bHype events."""

__version__ = "0.1.0"
