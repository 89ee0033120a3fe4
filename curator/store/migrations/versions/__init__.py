"""Migrations, one per schema change (Alembic revision files)."""
