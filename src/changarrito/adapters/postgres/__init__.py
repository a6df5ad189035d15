"""PostgreSQL adapters: the pool, migrations, the credential store, change notifications and
key rotation. SQL lives in ``queries.sql`` and ``migrations/``; psycopg errors are translated
to the domain's at this edge (``errors.translated``) and never escape it."""
