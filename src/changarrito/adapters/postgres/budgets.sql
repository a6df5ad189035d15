-- Queries of the budgets (budgets.py, migration 0019). Same format as queries.sql.

-- name: budget_limits
-- The limits that apply to a tenant (its own over the default's; NULL: the defaults only),
-- each with whether it is the default's.
SELECT DISTINCT ON (b.metric) b.metric, b.soft, b.hard, b.tenant_id IS NULL AS inherited
FROM usage_budgets b
WHERE b.tenant_id IS NULL OR b.tenant_id = %(tenant_id)s::uuid
ORDER BY b.metric, b.tenant_id NULLS LAST

-- name: delete_budgets
DELETE FROM usage_budgets WHERE tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid

-- name: insert_budgets
INSERT INTO usage_budgets (tenant_id, metric, soft, hard)
SELECT %(tenant_id)s::uuid, m, s, h
FROM unnest(%(metrics)s::text[], %(softs)s::bigint[], %(hards)s::bigint[]) AS l (m, s, h)

-- name: usage_figures
-- This period's figures of a tenant's metrics (``metrics`` and ``periods`` side by side).
SELECT f.metric, f.amount, f.soft_reached_at, f.hard_reached_at
FROM unnest(%(metrics)s::text[], %(periods)s::text[]) AS p (metric, period)
JOIN usage_figures f ON f.metric = p.metric AND f.period = p.period
WHERE f.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid

-- name: budget_standing
-- One metric of a tenant: the limit that applies (its own, else the default) and this
-- period's figure, in one read.
SELECT l.soft, l.hard,
       coalesce((SELECT f.amount FROM usage_figures f
                 WHERE f.tenant_id = %(tenant_id)s::uuid AND f.metric = %(metric)s
                   AND f.period = %(period)s), 0) AS figure
FROM changarrito_budget(%(tenant_id)s::uuid, %(metric)s) AS l
