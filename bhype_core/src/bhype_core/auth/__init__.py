"""Auth package of the bHype core."""

# bhype_core.config imports auth.settings (the [auth] core section), and auth.settings needs
# config.Section: importing config first here makes that cycle resolve in either import order.
import bhype_core.config  # noqa: F401
