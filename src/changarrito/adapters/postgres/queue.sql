-- The inbound message queue (whatsapp_inbound_messages, migrations 0004 and 0005; queue.py).
-- Every state change of a claimed message names the worker holding its lease (locked_by): a
-- worker that lost its lease changes nothing. The replies are message_log.sql's.

-- name: claim
-- Leases up to %(limit)s messages that are due, or whose worker's lease ran out (a crash),
-- skipping rows another worker is claiming and conversations another worker is answering.
WITH due AS (
    SELECT m.id
    FROM whatsapp_inbound_messages m
    WHERE ((m.state = 'pending' AND m.available_at <= now())
           OR (m.state = 'processing' AND m.locked_until < now()))
      AND NOT EXISTS (
          SELECT 1 FROM whatsapp_inbound_messages busy
          WHERE busy.phone_number_id = m.phone_number_id
            AND busy.customer_id = m.customer_id
            AND busy.state = 'processing'
            AND busy.locked_until >= now()
            AND busy.id <> m.id)
    ORDER BY m.available_at, m.id
    LIMIT %(limit)s
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE whatsapp_inbound_messages m
SET state = 'processing',
    attempts = m.attempts + 1,
    locked_until = now() + make_interval(secs => %(lease)s),
    locked_by = %(worker)s,
    updated_at = now()
FROM due
WHERE m.id = due.id
RETURNING m.id, m.wamid, m.phone_number_id, m.tenant_id, m.type, m.text, m.sent_at,
          m.attempts, m.customer_id, m.customer_phone, m.customer_user_id,
          EXISTS (SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = m.id)
              AS has_reply,
          m.locked_by AS claimed_by

-- name: claim_batch
-- The workers' claim: as ``claim``, at most one message per conversation (its oldest due one,
-- so that a batch never answers one customer twice at once), and fair across tenants with a
-- cost that does not grow with their number. The tenants with pending messages form a ring,
-- in id order from %(start)s (wrapping round past the largest id); the platform's number
-- (tenant NULL) is one more tenant, at the wrap point. The claim walks the ring until it has
-- seen %(window)s tenants with a due message, or %(hops)s tenants in all (those whose messages
-- all wait for a backoff cost two index probes of pending_tenant, 0006, each), and takes each
-- examined tenant's oldest claimable message, in ring order, before the second of any. The
-- caller starts the next claim where this one stopped (queue.py), so tenants with a backlog
-- are served in turn. Candidates are bounded too: about 2 × limit due heads shared among the
-- tenants examined, 2 × limit of the platform's, and 2 × limit expired leases (first).
WITH RECURSIVE ring (tenant_id, lap, hops, found, due) AS (
    -- lap -1: before the first tenant; 0: ids from the start up; 1: wrapped round, ids below
    -- the start. One tenant per step, from the index (a loose index scan).
    SELECT NULL::uuid, -1, 0, 0, false
    UNION ALL
    SELECT n.tenant_id, n.lap, r.hops + 1, r.found + n.due::int, n.due
    FROM ring r
    CROSS JOIN LATERAL (
        SELECT x.tenant_id, x.lap,
               EXISTS (SELECT 1 FROM whatsapp_inbound_messages d
                       WHERE d.tenant_id = x.tenant_id AND d.state = 'pending'
                         AND d.available_at <= now()) AS due
        FROM ((SELECT p.tenant_id, 0 AS lap FROM whatsapp_inbound_messages p
               WHERE r.lap = -1 AND p.state = 'pending' AND p.tenant_id >= %(start)s
               ORDER BY p.tenant_id LIMIT 1)
              UNION ALL
              (SELECT p.tenant_id, 0 FROM whatsapp_inbound_messages p
               WHERE r.lap = 0 AND p.state = 'pending' AND p.tenant_id > r.tenant_id
               ORDER BY p.tenant_id LIMIT 1)
              UNION ALL
              (SELECT p.tenant_id, 1 FROM whatsapp_inbound_messages p
               WHERE r.lap < 1 AND p.state = 'pending' AND p.tenant_id < %(start)s
               ORDER BY p.tenant_id LIMIT 1)
              UNION ALL
              (SELECT p.tenant_id, 1 FROM whatsapp_inbound_messages p
               WHERE r.lap = 1 AND p.state = 'pending' AND p.tenant_id > r.tenant_id
                 AND p.tenant_id < %(start)s
               ORDER BY p.tenant_id LIMIT 1)
              LIMIT 1) x
    ) n
    WHERE r.hops < %(hops)s AND r.found < %(window)s
),
share AS (
    -- Due heads read per tenant examined: 2 × limit in all, at least one each.
    SELECT 2 * %(limit)s / greatest(1, count(*)) + 1 AS per_tenant FROM ring WHERE due
),
candidates AS (
    SELECT c.id, c.tenant_id, c.available_at, 2 * t.hops AS place
    FROM ring t
    CROSS JOIN LATERAL (
        SELECT m.id, m.tenant_id, m.available_at
        FROM whatsapp_inbound_messages m
        WHERE m.tenant_id = t.tenant_id AND m.state = 'pending' AND m.available_at <= now()
          AND NOT EXISTS (
              SELECT 1 FROM whatsapp_inbound_messages busy
              WHERE busy.phone_number_id = m.phone_number_id
                AND busy.customer_id = m.customer_id
                AND busy.id <> m.id
                AND ((busy.state = 'processing' AND busy.locked_until >= now())
                     OR ((busy.state = 'pending' AND busy.available_at <= now())
                         OR (busy.state = 'processing' AND busy.locked_until < now()))
                        AND (busy.available_at, busy.id) < (m.available_at, m.id)))
        ORDER BY m.available_at, m.id
        LIMIT (SELECT per_tenant FROM share)
    ) c
    WHERE t.due
    UNION ALL
    -- The platform's place is the ring's wrap point: it is examined unless the ring stopped
    -- at a cap before wrapping round.
    (SELECT m.id, m.tenant_id, m.available_at,
            (SELECT coalesce(2 * min(hops) FILTER (WHERE lap = 1), 2 * max(hops) + 2) - 1
             FROM ring) AS place
     FROM whatsapp_inbound_messages m
     WHERE m.tenant_id IS NULL AND m.state = 'pending' AND m.available_at <= now()
       AND NOT EXISTS (
           SELECT 1 FROM ring
           WHERE lap = 0 AND (hops >= %(hops)s OR found >= %(window)s))
       AND NOT EXISTS (
           SELECT 1 FROM whatsapp_inbound_messages busy
           WHERE busy.phone_number_id = m.phone_number_id
             AND busy.customer_id = m.customer_id
             AND busy.id <> m.id
             AND ((busy.state = 'processing' AND busy.locked_until >= now())
                  OR ((busy.state = 'pending' AND busy.available_at <= now())
                      OR (busy.state = 'processing' AND busy.locked_until < now()))
                     AND (busy.available_at, busy.id) < (m.available_at, m.id)))
     ORDER BY m.available_at, m.id
     LIMIT 2 * %(limit)s)
    UNION ALL
    -- Expired leases (a crashed worker's) come first.
    (SELECT m.id, m.tenant_id, m.available_at, 0 AS place
     FROM whatsapp_inbound_messages m
     WHERE m.state = 'processing' AND m.locked_until < now()
       AND NOT EXISTS (
           SELECT 1 FROM whatsapp_inbound_messages busy
           WHERE busy.phone_number_id = m.phone_number_id
             AND busy.customer_id = m.customer_id
             AND busy.id <> m.id
             AND ((busy.state = 'processing' AND busy.locked_until >= now())
                  OR ((busy.state = 'pending' AND busy.available_at <= now())
                      OR (busy.state = 'processing' AND busy.locked_until < now()))
                     AND (busy.available_at, busy.id) < (m.available_at, m.id)))
     ORDER BY m.locked_until
     LIMIT 2 * %(limit)s)
),
ranked AS (
    -- Turns: each tenant's first, in ring order, then each tenant's second...
    SELECT c.id, c.available_at, c.place,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.place, c.available_at, c.id)
               AS turn
    FROM candidates c
),
due AS (
    -- The state is checked again on the locked row: another worker may have claimed it since.
    SELECT m.id
    FROM ranked r
    JOIN whatsapp_inbound_messages m ON m.id = r.id
    WHERE (m.state = 'pending' AND m.available_at <= now())
       OR (m.state = 'processing' AND m.locked_until < now())
    ORDER BY r.turn, r.place, r.available_at, r.id
    LIMIT %(limit)s
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE whatsapp_inbound_messages m
SET state = 'processing',
    attempts = m.attempts + 1,
    locked_until = now() + make_interval(secs => %(lease)s),
    locked_by = %(worker)s,
    updated_at = now()
FROM due
WHERE m.id = due.id
RETURNING m.id, m.wamid, m.phone_number_id, m.tenant_id, m.type, m.text, m.sent_at,
          m.attempts, m.customer_id, m.customer_phone, m.customer_user_id,
          EXISTS (SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = m.id)
              AS has_reply,
          m.locked_by AS claimed_by

-- name: extend
-- Renews the lease of messages this worker is still answering.
UPDATE whatsapp_inbound_messages
SET locked_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND state = 'processing' AND locked_by = %(worker)s
RETURNING id

-- name: finish
-- Ends a claim for good: answered, ignored or failed (an answer in the transaction of its
-- reply's last wamid: message_log.py).
UPDATE whatsapp_inbound_messages
SET state = %(state)s, locked_until = NULL, locked_by = NULL,
    last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND state = 'processing' AND locked_by = %(worker)s
RETURNING state

-- name: retry
-- Puts a message back after a retryable failure, or dead-letters it when it is out of attempts.
UPDATE whatsapp_inbound_messages
SET state = CASE WHEN attempts >= %(max_attempts)s THEN 'dead' ELSE 'pending' END,
    available_at = now() + make_interval(secs => %(delay)s),
    locked_until = NULL, locked_by = NULL,
    last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND state = 'processing' AND locked_by = %(worker)s
RETURNING state

-- name: defer
-- A burst is not over yet: the claimed message goes back to pending until %(delay)s seconds
-- from now, without using up an attempt, and so do its conversation's other waiting
-- messages (the claim would take the next oldest otherwise): when the customer has been
-- quiet that long, the oldest is claimed and the rest join its reply.
WITH back AS (
    UPDATE whatsapp_inbound_messages
    SET state = 'pending', attempts = greatest(attempts - 1, 0),
        available_at = now() + make_interval(secs => %(delay)s),
        locked_until = NULL, locked_by = NULL, updated_at = now()
    WHERE id = %(id)s AND state = 'processing' AND locked_by = %(worker)s
    RETURNING conversation_id
), others AS (
    UPDATE whatsapp_inbound_messages m
    SET available_at = greatest(m.available_at, now() + make_interval(secs => %(delay)s)),
        updated_at = now()
    FROM back
    WHERE m.conversation_id = back.conversation_id AND m.id <> %(id)s AND m.state = 'pending'
)
SELECT count(*) FROM back

-- name: delay_recipient
-- Meta's pair rate limit: the customer's other waiting messages wait too; nobody else's do.
UPDATE whatsapp_inbound_messages
SET available_at = greatest(available_at, now() + make_interval(secs => %(delay)s)),
    updated_at = now()
WHERE phone_number_id = %(phone_number_id)s AND customer_id = %(customer_id)s
  AND state = 'pending'

-- name: requeue
-- `changarrito messages retry ID`: a failed or dead message gets a fresh set of attempts.
UPDATE whatsapp_inbound_messages
SET state = 'pending', attempts = 0, available_at = now(), locked_until = NULL,
    locked_by = NULL, updated_at = now()
WHERE id = %(id)s AND state IN ('failed', 'dead')
RETURNING id

-- name: message_state
SELECT state FROM whatsapp_inbound_messages WHERE id = %(id)s

-- name: notify_inbound
SELECT pg_notify('changarrito_inbound', %(payload)s)

-- name: recent
-- A tenant's (or, with no tenant, the platform's) latest messages, for operators.
SELECT m.id, m.received_at, m.phone_number_id, m.customer_id, m.type, m.state, m.attempts,
       m.last_error, m.text,
       (SELECT count(*) FROM whatsapp_outbound_messages o
        WHERE o.inbound_id = m.id AND o.wamid IS NOT NULL) AS parts_sent
FROM whatsapp_inbound_messages m
WHERE (m.tenant_id = %(tenant_id)s OR (%(tenant_id)s::uuid IS NULL AND m.tenant_id IS NULL))
  AND (%(state)s::text IS NULL OR m.state = %(state)s)
ORDER BY m.received_at DESC, m.id DESC
LIMIT %(limit)s
