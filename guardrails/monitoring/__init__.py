"""The production loop: logs -> windowed signals -> drift -> retrain triggers (+ scale-out).

``logs`` reads and validates production logs, ``signals`` turns windows of them into signals,
``drift`` compares two windows of embeddings (the drift report), ``triggers`` decides which
components to retrain, ``scaleout`` runs the drift histograms and re-embeds on Ray Data.
"""
