-- Per-tenant rate limits (``adapters/postgres/rate_limits.py``): one row per tenant and action
-- (``verify``, ``payment-links``), holding its theoretical arrival time (GCRA): a call is
-- allowed while ``tat`` is at most one period ahead of now, and moves it on by one interval.
-- One row per bucket, updated in place, so the table stays as small as the tenant list.

CREATE TABLE rate_limits (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    action    text NOT NULL,
    tat       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, action)
);
