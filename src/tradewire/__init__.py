"""tradewire: the event backbone of a trading platform.

Two halves share one process and one store:

* user-event delivery: containers emit protobuf ``UserEvent`` frames over
  ZeroMQ (SUB 5570 fast path, ROUTER 5571 guaranteed path) and the gateway
  gets each one to its user's live session or an external channel;
* platform ingest: connectors stream JSON envelopes over a WebSocket or HTTP,
  each message is committed and then acknowledged.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
