"""The intake journal's file: what is appended comes back, what was cut off does not."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tradewire.server.intake_journal import IntakeJournal, encode_entries, read_segment

frames_st = st.lists(st.binary(min_size=0, max_size=300), max_size=30)


def _segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _reopen(directory: Path) -> list[bytes]:
    journal = IntakeJournal(directory, sync=False)
    try:
        return [frame for frames in journal.replay() for frame in frames]
    finally:
        journal.close()


@given(batches=st.lists(frames_st, max_size=5), sync=st.booleans())
def test_what_was_appended_is_replayed_in_order(
    tmp_path_factory: object, batches: list[list[bytes]], sync: bool
) -> None:
    directory = Path(os.fspath(tmp_path_factory.mktemp("j")))  # type: ignore[attr-defined]
    journal = IntakeJournal(directory, sync=sync, segment_bytes=512)  # several segments
    for batch in batches:
        journal.append(batch)
    journal.close()
    assert _reopen(directory) == [frame for batch in batches for frame in batch]


@given(frames=frames_st.filter(bool), cut=st.integers(min_value=0))
def test_a_cut_off_tail_loses_only_the_entries_it_cut(
    tmp_path_factory: object, frames: list[bytes], cut: int
) -> None:
    """A kill mid-write leaves a prefix of the bytes: the whole entries before it come back."""
    directory = Path(os.fspath(tmp_path_factory.mktemp("j")))  # type: ignore[attr-defined]
    data = encode_entries(frames)
    cut %= len(data) + 1
    path = directory / "intake-00000001.journal"
    path.write_bytes(data[:cut])
    replayed, torn = read_segment(path)
    whole = [len(encode_entries(frames[:n])) for n in range(len(frames) + 1)]
    kept = max(n for n, size in enumerate(whole) if size <= cut)
    assert replayed == frames[:kept]
    assert torn == cut - whole[kept]


def test_a_corrupt_entry_ends_the_replay(tmp_path: Path) -> None:
    data = bytearray(encode_entries([b"first", b"second", b"third"]))
    second = len(encode_entries([b"first"])) + 8  # the body of "second"
    data[second] ^= 0xFF
    path = tmp_path / "intake-00000001.journal"
    path.write_bytes(bytes(data))
    assert read_segment(path) == ([b"first"], len(data) - second + 8)


def test_released_segments_are_deleted_and_the_live_one_emptied(tmp_path: Path) -> None:
    journal = IntakeJournal(tmp_path, sync=True, segment_bytes=60, truncate_bytes=30)
    first = journal.append([b"x" * 60])
    second = journal.append([b"y" * 60])  # the first segment was full: a new one
    assert first != second
    assert len(_segments(tmp_path)) == 3  # two full, one new and empty
    assert journal.unreleased() == 2
    journal.release(first)
    assert len(_segments(tmp_path)) == 2  # the released full one is gone
    journal.release(second)
    assert len(_segments(tmp_path)) == 1
    third = journal.append([b"z" * 10, b"w" * 10])  # 36 bytes: no new segment
    journal.release(third)  # one of two: the live segment keeps both
    assert (tmp_path / _segments(tmp_path)[0]).stat().st_size > 0
    journal.release(third)
    assert (tmp_path / _segments(tmp_path)[0]).stat().st_size == 0  # past 30 bytes: emptied
    assert journal.unreleased() == 0
    journal.append([b"after"])
    journal.close()
    assert _reopen(tmp_path) == [b"after"]


def test_replayed_segments_are_dropped_and_writing_goes_on_in_a_new_one(tmp_path: Path) -> None:
    journal = IntakeJournal(tmp_path, sync=False)
    journal.append([b"one", b"two"])
    journal.close()
    again = IntakeJournal(tmp_path, sync=False)
    assert [f for frames in again.replay() for f in frames] == [b"one", b"two"]
    again.append([b"three"])
    again.drop_replayed()
    again.close()
    assert _reopen(tmp_path) == [b"three"]


def test_other_files_in_the_directory_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    journal = IntakeJournal(tmp_path, sync=False)
    journal.append([b"a"])
    assert list(journal.replay()) == []
    journal.close()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@st.composite
def damaged_segments(draw: st.DrawFn) -> bytes:
    """Whole entries, then maybe noise, maybe one byte flipped anywhere: or just noise."""
    data = bytearray(encode_entries(draw(frames_st)) + draw(st.binary(max_size=40)))
    if data and draw(st.booleans()):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@given(data=st.one_of(st.binary(max_size=2_000), damaged_segments()))
def test_any_bytes_in_a_segment_read_as_a_prefix_of_whole_entries(
    tmp_path_factory: object, data: bytes
) -> None:
    """A segment's bytes come from this process or from a disk that lost some: never a crash.

    Whatever the file holds, the entries read back re-encode to exactly the
    bytes before the reported torn tail, so nothing is invented or skipped.
    """
    directory = Path(os.fspath(tmp_path_factory.mktemp("j")))  # type: ignore[attr-defined]
    path = directory / "intake-00000001.journal"
    path.write_bytes(data)
    frames, torn = read_segment(path)
    assert 0 <= torn <= len(data)
    assert encode_entries(frames) == data[: len(data) - torn]
