"""``python -m tradewire`` is the ``tradewire`` command."""

from tradewire.cli import main

main()
