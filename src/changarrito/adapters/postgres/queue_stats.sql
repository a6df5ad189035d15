-- The queue's depth and age for /metrics (adapters.metrics): one round trip, each count on the
-- partial index of its state (migration 0004), so it costs the backlog, not the table.

-- name: queue_stats
SELECT
    (SELECT count(*) FROM whatsapp_inbound_messages WHERE state = 'pending') AS pending,
    (SELECT count(*) FROM whatsapp_inbound_messages
     WHERE state = 'pending' AND available_at <= now()) AS due,
    (SELECT count(*) FROM whatsapp_inbound_messages WHERE state = 'processing') AS processing,
    coalesce(extract(epoch FROM now() - least(
        (SELECT min(received_at) FROM whatsapp_inbound_messages WHERE state = 'pending'),
        (SELECT min(received_at) FROM whatsapp_inbound_messages WHERE state = 'processing')
    )), 0)::float8 AS oldest_age_seconds
