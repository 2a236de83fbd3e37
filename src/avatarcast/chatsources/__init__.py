"""Platform chat in and written answers out: Twitch IRC, YouTube live chat, signed webhooks.

Each source runs on the control plane's event loop, never a stream's frame loop; its messages
go through one :class:`ChatIntake` per stream, which gives every message a fate (answered
spoken, answered written, merged, blocked, overflow, ignored) and keeps the account exact.
"""

from avatarcast.chatsources.classify import Kind, classify
from avatarcast.chatsources.inbound import Backoff, Inbound, Reply, SourceHealth
from avatarcast.chatsources.intake import Account, ChatIntake, IntakeOptions, Spoken

__all__ = [
    "Account",
    "Backoff",
    "ChatIntake",
    "Inbound",
    "IntakeOptions",
    "Kind",
    "Reply",
    "SourceHealth",
    "Spoken",
    "classify",
]
