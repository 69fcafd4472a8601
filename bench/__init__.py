"""tradewire benchmarks: ``make bench`` (``python -m bench``)."""
