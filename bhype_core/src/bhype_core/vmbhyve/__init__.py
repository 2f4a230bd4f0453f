"""Import VMs from vm-bhyve (churchers/vm-bhyve) in place, and export them back (issue 21)."""
