"""bHype snmp plugin: SNMP traps and informs for bHype events, BHYPE-MIB and a read-only VM table."""

__version__ = "0.3.1"
