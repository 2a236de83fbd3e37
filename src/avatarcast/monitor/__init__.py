"""On-air monitors: the encoded programme read back as a viewer would, findings, remediation.

``signals`` decodes the encoder's packets cheaply (every AAC packet, only the H.264
keyframes, and every frame of a short window now and then for lip sync); ``meters`` turns
what was decoded into one number per monitor; ``watch`` compares each with its threshold
from ``settings.monitors``, reports a ``glitch`` when it passes and asks ``ladder`` what to do.
"""
