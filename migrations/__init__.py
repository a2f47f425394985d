"""Alembic migrations of the app database: the only way its schema changes."""
