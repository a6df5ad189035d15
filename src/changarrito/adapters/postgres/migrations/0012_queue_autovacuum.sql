-- Autovacuum keeps up with the message queue. Every answered message leaves dead rows: its
-- inbound row is inserted, then updated twice (claimed, then finished; ``state`` is in the
-- partial indexes' predicates, so no update is HOT), and its reply's row is inserted and
-- updated once or twice. At 200 messages a second that is 600 to 800 dead rows a second,
-- and until they are vacuumed the claim (queue.sql) walks their entries in the
-- ``WHERE state = 'pending'`` indexes (0004, 0006): it slowed down within minutes.
--
-- PostgreSQL's defaults scale with the table: a table is vacuumed once a fifth of it is dead
-- (``autovacuum_vacuum_scale_factor`` 0.2), analysed once a tenth has changed. The message
-- tables only grow, so with them the wait between vacuums grows without bound (at a million
-- rows, 200,000 dead rows: five minutes of that traffic). What the claim pays for is the
-- number of dead rows, not their share, so the thresholds here are counts:
--
-- - ``autovacuum_vacuum_scale_factor = 0``, ``autovacuum_vacuum_threshold = 5000``: a table is
--   due once it holds 5,000 dead rows (a few seconds at the target rate, hours at a trickle,
--   when the claim does not notice them), whatever its size. The autovacuum launcher looks at
--   a database every ``autovacuum_naptime`` (server-wide, default 60 s), so under load a
--   vacuum starts at most about a minute after the last one: the dead rows stay bounded by
--   one naptime of traffic.
-- - ``autovacuum_vacuum_insert_scale_factor = 0``, ``autovacuum_vacuum_insert_threshold =
--   20000``: rows only inserted (the statuses; rows not yet claimed) are vacuumed too, to set
--   their pages all-visible and frozen a little at a time rather than in one long pass.
-- - ``autovacuum_analyze_scale_factor = 0.02``, ``autovacuum_analyze_threshold = 5000``: the
--   planner's row counts follow the tables as they grow from empty (a fresh database), so
--   that the claim keeps its partial-index plans; analysing samples at most 30,000 rows, so
--   doing it about once a minute costs little.
-- - ``autovacuum_vacuum_cost_limit = 2000`` (the default is ``vacuum_cost_limit``, 200) with
--   ``autovacuum_vacuum_cost_delay = 2`` (ms, the default): ten times the default I/O budget,
--   so that a vacuum of these tables (which rereads their indexes) ends in seconds rather than
--   trailing a minute behind the traffic, still pausing between rounds so that it does not
--   take the disk from the queries.
--
-- These are storage parameters only (``ALTER TABLE ... SET``): no rewrite, a brief lock, and
-- ``ALTER TABLE ... RESET (...)`` undoes them. They have no effect where autovacuum is off in
-- the server's configuration (``autovacuum = off``).

ALTER TABLE whatsapp_inbound_messages SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 2
);

ALTER TABLE whatsapp_outbound_messages SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 2
);

ALTER TABLE whatsapp_message_statuses SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 2
);
