"""bHype migrate plugin: moving VMs to another bHype host (cold and warm, rsync or ZFS send)."""

__version__ = "0.3.0"
