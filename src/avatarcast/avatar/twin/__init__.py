"""The digital twin: a presenter made from the merchant's own recording (or one photo).

``pack`` reads and validates a prepared twin pack, ``clip`` holds its idle loop in memory,
``engine`` is the small interface a mouth engine implements (``patches`` is the default, with
no weights), ``render`` draws the idle loop with the engine's mouth into programme frames.
Preparing a pack (face landmarks, alignment, loop point) lives in ``avatarcast.twinprep``.
"""
