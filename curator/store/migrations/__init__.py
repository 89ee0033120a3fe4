"""The database's schema history as Alembic migrations, run by :mod:`curator.store.migrate`
(``curator db upgrade``, and at start-up with the ``auto_migrate`` setting). ``versions/`` holds one
file per change, oldest first; ``0001`` is the schema of the first release."""
