"""The Ray engine: the same recipe on a Ray cluster (the ``ray`` extra).

Technique steps become ``map_batches`` over a pool of actors, each running the engine's own
session; one run's shared state lives in a few more actors: the coordinator (sample
numbering, spending and the budget, the workers), one limits actor per model, and the
reply cache. Nothing here imports Ray until a run needs it.
"""
