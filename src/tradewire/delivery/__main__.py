"""``python -m tradewire.delivery`` prints the generated state block of the delivery docs."""

from tradewire.delivery.states import render_state_doc

print(render_state_doc(), end="")
