"""The host update workflow: plan, boot environment, stop, install, reboot, bring VMs back."""
