"""Stream backends: run each stream somewhere, restart it when it crashes, report events.

``base`` is the interface, ``local`` runs each stream as a ``worker`` process on this machine.
``avatarcast.control.manager`` keeps a backend in line with the control plane's database.
"""

from avatarcast.runner.base import StreamEvent, StreamRunner, StreamSpec, StreamStatus
from avatarcast.runner.local import LocalRunner

__all__ = ["LocalRunner", "StreamEvent", "StreamRunner", "StreamSpec", "StreamStatus"]
