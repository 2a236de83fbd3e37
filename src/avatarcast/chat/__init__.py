"""Live chat: moderation, retrieval over the live catalog, grounded answers, the desk."""

from avatarcast.chat.answers import Answer, Answerer, address
from avatarcast.chat.desk import ChatDesk
from avatarcast.chat.message import ChatMessage, Fate, Status
from avatarcast.chat.moderation import Moderator, Rejection, TokenBucket
from avatarcast.chat.questions import is_question
from avatarcast.chat.retrieval import Hit, Retrieval, Retriever

__all__ = [
    "Answer",
    "Answerer",
    "ChatDesk",
    "ChatMessage",
    "Fate",
    "Hit",
    "Moderator",
    "Rejection",
    "Retrieval",
    "Retriever",
    "Status",
    "TokenBucket",
    "address",
    "is_question",
]
