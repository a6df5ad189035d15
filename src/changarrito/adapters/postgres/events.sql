-- Queries of the event outbox (events.py, migration 0017). Same format as queries.sql.

-- name: claim_events
-- Leases due events: of each ordering key only its oldest pending one, and only when it is
-- due and not held by a live lease (a key whose oldest waits for its backoff waits whole).
WITH heads AS (
    SELECT DISTINCT ON (e.ordering_key) e.id, e.due_at, e.lease_until
    FROM changarrito_events e
    WHERE e.state = 'pending'
    ORDER BY e.ordering_key, e.id
), due AS (
    SELECT e.id
    FROM changarrito_events e
    JOIN heads h ON h.id = e.id
    WHERE h.due_at <= now() AND (h.lease_until IS NULL OR h.lease_until < now())
    ORDER BY e.id
    LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE changarrito_events e
SET claimed_by = %(worker)s, lease_until = now() + make_interval(secs => %(lease)s),
    attempts = e.attempts + 1
FROM due
WHERE e.id = due.id
RETURNING e.id, e.event_id, e.type, e.tenant_id, e.ordering_key, e.data, e.created_at,
          e.state, e.attempts, e.last_error, e.last_status, e.delivered_at;

-- name: event_delivered
UPDATE changarrito_events
SET state = 'delivered', delivered_at = now(), last_status = %(status)s, last_error = NULL,
    claimed_by = NULL, lease_until = NULL
WHERE id = %(id)s;

-- name: event_failed
-- A failed attempt: due again after ``delay`` seconds, or dead (``delay`` NULL).
UPDATE changarrito_events
SET state = CASE WHEN %(delay)s::float8 IS NULL THEN 'dead' ELSE 'pending' END,
    due_at = CASE WHEN %(delay)s::float8 IS NULL THEN due_at
                  ELSE now() + make_interval(secs => %(delay)s::float8) END,
    last_error = %(error)s, last_status = %(status)s, claimed_by = NULL, lease_until = NULL
WHERE id = %(id)s;

-- name: list_events
-- The newest events first, of one state (NULL: any), before row ``before``.
SELECT id, event_id, type, tenant_id, ordering_key, data, created_at, state, attempts,
       last_error, last_status, delivered_at
FROM changarrito_events
WHERE (%(state)s::text IS NULL OR state = %(state)s::text)
  AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: retry_events
-- Dead events back to pending with a fresh set of attempts (these rows, or every dead one).
WITH revived AS (
    UPDATE changarrito_events
    SET state = 'pending', attempts = 0, due_at = now(), last_error = NULL
    WHERE state = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    RETURNING id
)
SELECT count(*), pg_notify('changarrito_inbound', 'event') FROM revived;
