"""The gateway process: sockets, HTTP app and their lifecycle."""

from tradewire.server.runtime import Gateway, ListenAddresses, run_gateway

__all__ = ["Gateway", "ListenAddresses", "run_gateway"]
