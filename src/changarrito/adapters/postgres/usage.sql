-- Queries of the usage ledger (usage.py, migration 0018). Same format as queries.sql.

-- name: usage_rollup
-- The ledger rolled up over [first, last] by ``grp`` (day, provider, source) and kind, for
-- one scope (``tenant_id``; NULL: the platform's own number) or, with ``every``, for every
-- tenant (each row with its tenant).
SELECT CASE %(grp)s::text WHEN 'day' THEN to_char(u.day, 'YYYY-MM-DD')
                          WHEN 'provider' THEN coalesce(u.provider, '')
                          ELSE u.source END AS "group",
       u.kind,
       count(*)::bigint AS acts,
       coalesce(sum(u.input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(u.output_tokens), 0)::bigint AS output_tokens,
       coalesce(sum(u.seconds), 0)::float8 AS seconds,
       count(*) FILTER (WHERE u.billable)::bigint AS billable,
       CASE WHEN %(every)s THEN u.tenant_id END AS tenant_id
FROM usage_ledger u
WHERE u.day BETWEEN %(first)s AND %(last)s
  AND (%(every)s OR u.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid)
GROUP BY 1, 2, 8
ORDER BY 8 NULLS FIRST, 1, 2
