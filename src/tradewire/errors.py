"""The one exception root of tradewire.

Expected failures (a bad frame, an invalid envelope, a refused delivery) are
*values* (see :class:`tradewire.wire.Rejection`); exceptions are for bugs and
for conditions the caller cannot go on from. Every exception tradewire raises
derives from :class:`TradewireError` and carries structured fields::

    TradewireError
    ├── ConfigError            bad flag, env var or TOML value
    │   └── PortInUseError     a listening port is taken
    ├── StoreError             the durable store failed or was closed
    │   └── StoreClosedError   append after close
    └── WireError              raised form of a Rejection (``Rejection.raise_()``)

Third-party exceptions are translated at the adapter boundary.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PortInUseError",
    "StoreClosedError",
    "StoreError",
    "TradewireError",
    "WireError",
]


class TradewireError(Exception):
    """Root of every tradewire exception."""


class ConfigError(TradewireError):
    """A configuration value is missing or invalid.

    ``setting`` names the setting (``http_port``), ``hint`` says what to do.
    """

    def __init__(self, message: str, *, setting: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.setting = setting
        self.hint = hint


class PortInUseError(ConfigError):
    """A port the server must listen on is already taken."""

    def __init__(self, *, what: str, address: str, flag: str):
        super().__init__(
            f"{what} cannot listen on {address}: address already in use "
            f"(choose another port with {flag})",
            setting=flag,
            hint=f"choose another port with {flag}",
        )
        self.what = what
        self.address = address
        self.flag = flag


class StoreError(TradewireError):
    """The durable store failed; nothing in the failed batch was acknowledged."""


class StoreClosedError(StoreError):
    """An operation was attempted on a closed store."""


class WireError(TradewireError):
    """A wire input was rejected; the raised form of a ``Rejection`` value."""

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field
