"""Exceptions that several layers of the harness raise.

`ConfigError` lives here, not in `methods.api`, so that the data layer, the networks and the
cluster helpers can name a wrong setting without importing the Method contract (and with it
torch); `methods.api` re-exports it for methods and plug-ins. This module needs the standard
library only.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names the setting."""
