"""The delivery transition table: every move walked, every other move refused, docs in sync."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tradewire.delivery import (
    FINAL_STATES,
    TRANSITIONS,
    DeliveryState,
    DeliveryStateError,
    DeliveryTrigger,
    advance,
    is_final,
    render_state_doc,
)
from tradewire.errors import TradewireError

DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts" / "delivery.md"
BEGIN = "<!-- BEGIN GENERATED: tradewire.delivery.states.render_state_doc -->"
END = "<!-- END GENERATED -->"

ALL_PAIRS = list(itertools.product(DeliveryState, DeliveryTrigger))
VALID = sorted(TRANSITIONS.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value))
INVALID = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


@pytest.mark.parametrize(("pair", "target"), VALID, ids=lambda v: str(v))
def test_every_transition_in_the_table_is_taken(
    pair: tuple[DeliveryState, DeliveryTrigger], target: DeliveryState
) -> None:
    state, trigger = pair
    assert advance(state, trigger, "e1") is target


@pytest.mark.parametrize("pair", INVALID, ids=lambda v: str(v))
def test_every_other_move_is_refused(pair: tuple[DeliveryState, DeliveryTrigger]) -> None:
    state, trigger = pair
    with pytest.raises(DeliveryStateError) as info:
        advance(state, trigger, "e1")
    assert isinstance(info.value, TradewireError)
    assert (info.value.state, info.value.trigger, info.value.event_id) == (state, trigger, "e1")
    assert "e1" in str(info.value)


def test_final_states_have_no_way_out() -> None:
    assert {s for s in DeliveryState if is_final(s)} == set(FINAL_STATES)
    for state, _trigger in TRANSITIONS:
        assert not is_final(state)


def _reachable(start: DeliveryState) -> set[DeliveryState]:
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for (state, _t), target in TRANSITIONS.items():
            if state is here and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_every_state_is_reachable_and_can_finish() -> None:
    assert _reachable(DeliveryState.RECEIVED) == set(DeliveryState)
    for state in DeliveryState:
        assert _reachable(state) & FINAL_STATES, state


def test_rendered_doc_names_every_transition() -> None:
    doc = render_state_doc()
    assert doc.startswith("```mermaid\nstateDiagram-v2\n")
    for (state, trigger), target in TRANSITIONS.items():
        assert f"    {state.value} --> {target.value}: {trigger.value}\n" in doc
        assert f"| `{state.value}` | `{trigger.value}` | `{target.value}` |" in doc


def test_docs_embed_the_current_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match, f"{DOC} lacks the generated state block"
    assert match.group(1) == render_state_doc(), (
        "docs/concepts/delivery.md is out of date: replace the generated block with "
        "the output of `python -m tradewire.delivery`"
    )
