"""Who may connect: session tokens for users, API keys for connectors."""

from tradewire.auth.tokens import SessionTokens, TokenRejected, load_or_create_secret

__all__ = ["SessionTokens", "TokenRejected", "load_or_create_secret"]
