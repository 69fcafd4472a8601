"""Loopback HTTP servers that speak third-party APIs (Telegram Bot API, Discord and
Slack incoming webhooks, a signed-webhook receiver), for the channel tests and benches.

Each is a real Starlette app served by uvicorn on ``127.0.0.1`` port 0 in the
caller's event loop; it records every request it received and can be told
what to answer next (``script``), including the services' documented errors.
"""
