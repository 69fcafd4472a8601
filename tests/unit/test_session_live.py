"""A live session's push: a burst that overflows is refused, a slow consumer is flagged."""

from __future__ import annotations

from tradewire.server.session_ws import LiveSession


def test_overflow_while_the_writer_keeps_up_is_refused_not_flagged() -> None:
    session = LiveSession("u", batch=False, capacity=2)
    assert session.push(b"c1", guaranteed=True) and session.push(b"c2", guaranteed=True)
    assert not session.push(b"c3", guaranteed=True)  # left to the engine's retry
    assert not session.overflowed
    assert session.outbox.take(5) == [b"c1", b"c2"]


def test_overflow_while_a_send_waits_on_the_transport_flags_a_slow_consumer() -> None:
    session = LiveSession("u", batch=False, capacity=1)
    assert session.push(b"c1", guaranteed=True)
    session.writing = True  # what _send_pending sets while the transport pushes back
    assert not session.push(b"c2", guaranteed=True)
    assert session.overflowed


def test_informational_never_flags_a_slow_consumer() -> None:
    session = LiveSession("u", batch=False, capacity=1)
    session.writing = True
    assert session.push(b"i1", guaranteed=False)
    assert not session.push(b"i2", guaranteed=False)  # dropped and counted
    assert session.push(b"c1", guaranteed=True)  # takes the informational one's place
    assert not session.overflowed and session.outbox.dropped == 2
    assert session.outbox.take(5) == [b"c1"]


def test_a_closed_session_takes_nothing() -> None:
    session = LiveSession("u", batch=False)
    session.closed = True
    assert not session.push(b"c1", guaranteed=True)
    assert len(session.outbox) == 0
