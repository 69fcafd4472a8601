"""Generated protobuf code (``make proto``); do not edit.

The source of truth is ``tradewire/wire/proto/``. Use the converters in
:mod:`tradewire.wire.frames` instead of these wire types.
"""
