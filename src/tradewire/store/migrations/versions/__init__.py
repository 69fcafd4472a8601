"""Alembic revision scripts of the store, oldest first."""
