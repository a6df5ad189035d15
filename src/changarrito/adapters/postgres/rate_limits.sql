-- name: take_rate_limit
-- One call of an action for a tenant (GCRA on the database's clock, so every process agrees):
-- allowed when the bucket's theoretical arrival time, moved on by one interval, is at most one
-- period ahead of now; then stored. ``wait`` is 0 when allowed, else the seconds until a call
-- would be (a row another transaction has just created and this one cannot see yet: one
-- interval).
WITH taken AS (
    INSERT INTO rate_limits AS r (tenant_id, action, tat)
    VALUES (%(tenant_id)s, %(action)s, now() + make_interval(secs => %(interval)s))
    ON CONFLICT (tenant_id, action) DO UPDATE
       SET tat = greatest(r.tat, now()) + make_interval(secs => %(interval)s)
     WHERE greatest(r.tat, now()) + make_interval(secs => %(interval)s)
           <= now() + make_interval(secs => %(period)s)
    RETURNING 1
)
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM taken) THEN 0.0
    ELSE coalesce(
        (SELECT extract(epoch FROM greatest(tat, now()) - now())::float8
                + %(interval)s - %(period)s
           FROM rate_limits
          WHERE tenant_id = %(tenant_id)s AND action = %(action)s),
        %(interval)s)
    END AS wait
