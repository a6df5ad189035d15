"""PostgreSQL adapters: the pool, migrations, the credential store, the message queue and log,
notifications between processes and key rotation. Queries are the named blocks of this
package's ``.sql`` files, loaded once into ``queries.QUERIES``; migrations live in
``migrations/``. psycopg errors are translated to the domain's at this edge
(``errors.translated``) and never escape it."""
