"""End-to-end tools built on everything else: ``demo`` (``make demo``)."""
