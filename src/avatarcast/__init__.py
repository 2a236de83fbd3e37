"""avatarcast: an open server for 24/7 AI-avatar live selling."""

__version__ = "0.1.0"
__all__ = ["__version__"]
