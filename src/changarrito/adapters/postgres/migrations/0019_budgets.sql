-- Budgets on what the platform pays for: limits per tenant (or the default for every tenant)
-- on platform-sourced usage, and the running figures they are checked against.
--
-- A figure is keyed by its period (``2026-12`` for the monthly metrics, ``2026-12-03`` for
-- the daily one): a new period is a new row starting at 0, so nothing is reset and nothing
-- drifts. The ledger's trigger adds to the figures in the transaction that counts the act,
-- and records (once per period and level) when a soft or hard limit is first reached, filing
-- a ``usage.limit_reached`` event then.

CREATE TABLE usage_budgets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: the default of every tenant without a limit of its own for that metric.
    tenant_id  uuid REFERENCES tenants (id) ON DELETE CASCADE,
    metric     text NOT NULL CHECK (metric IN ('llmTokens', 'transcriptionSeconds',
                                                'platformMessages', 'platformTemplateContacts')),
    soft       bigint CHECK (soft >= 0),
    hard       bigint CHECK (hard >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_budgets_once UNIQUE NULLS NOT DISTINCT (tenant_id, metric)
);

COMMENT ON TABLE usage_budgets IS
    'Limits on platform-sourced usage: per tenant, or the default (tenant_id NULL).';

CREATE TABLE usage_figures (
    tenant_id       uuid REFERENCES tenants (id) ON DELETE CASCADE,
    metric          text NOT NULL,
    period          text NOT NULL,
    amount          bigint NOT NULL DEFAULT 0,
    soft_reached_at timestamptz,
    hard_reached_at timestamptz,
    CONSTRAINT usage_figures_key UNIQUE NULLS NOT DISTINCT (tenant_id, metric, period)
);

COMMENT ON TABLE usage_figures IS
    'Platform-sourced usage per tenant, metric and period (2026-12, or 2026-12-03 for daily metrics).';

-- The limit that applies to a tenant's metric: its own, else the default.
CREATE FUNCTION changarrito_budget(p_tenant uuid, p_metric text, OUT soft bigint, OUT hard bigint)
LANGUAGE sql STABLE AS $$
    SELECT b.soft, b.hard FROM usage_budgets b
    WHERE b.metric = p_metric AND (b.tenant_id = p_tenant OR b.tenant_id IS NULL)
    ORDER BY b.tenant_id NULLS LAST
    LIMIT 1;
$$;

-- Adds to a figure and, when this crosses a limit for the first time in the period, records
-- it and files usage.limit_reached.
CREATE FUNCTION changarrito_add_usage(p_tenant uuid, p_metric text, p_period text, p_amount bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f usage_figures%ROWTYPE;
    lim record;
    level text;
BEGIN
    IF p_amount <= 0 THEN
        RETURN;
    END IF;
    INSERT INTO usage_figures AS u (tenant_id, metric, period, amount)
    VALUES (p_tenant, p_metric, p_period, p_amount)
    ON CONFLICT ON CONSTRAINT usage_figures_key
    DO UPDATE SET amount = u.amount + EXCLUDED.amount
    RETURNING * INTO f;
    SELECT * INTO lim FROM changarrito_budget(p_tenant, p_metric);
    FOREACH level IN ARRAY ARRAY['soft', 'hard'] LOOP
        IF (level = 'soft' AND lim.soft IS NOT NULL AND f.amount >= lim.soft
                AND f.soft_reached_at IS NULL)
           OR (level = 'hard' AND lim.hard IS NOT NULL AND f.amount >= lim.hard
                AND f.hard_reached_at IS NULL) THEN
            UPDATE usage_figures SET
                soft_reached_at = CASE WHEN level = 'soft' THEN now() ELSE soft_reached_at END,
                hard_reached_at = CASE WHEN level = 'hard' THEN now() ELSE hard_reached_at END
            WHERE tenant_id IS NOT DISTINCT FROM p_tenant AND metric = p_metric
              AND period = p_period;
            PERFORM changarrito_emit(
                'usage.limit_reached', p_tenant,
                'usage:' || coalesce(p_tenant::text, 'platform') || ':' || p_metric,
                jsonb_build_object(
                    'tenantId', p_tenant, 'metric', p_metric, 'period', p_period,
                    'level', level, 'limit', CASE WHEN level = 'soft' THEN lim.soft ELSE lim.hard END,
                    'figure', f.amount));
        END IF;
    END LOOP;
END;
$$;

-- What the platform's credentials paid for a tenant, counted as each ledger row is written
-- (the platform's own number is the operator's business: not budgeted).
CREATE FUNCTION changarrito_usage_figures() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.tenant_id, to_char(n.day, 'YYYY-MM') AS month,
               CASE n.kind WHEN 'llm_call' THEN 'llmTokens'
                           WHEN 'transcription' THEN 'transcriptionSeconds'
                           WHEN 'whatsapp_message' THEN 'platformMessages' END AS metric,
               sum(CASE n.kind WHEN 'llm_call' THEN n.input_tokens + n.output_tokens
                               WHEN 'transcription' THEN ceil(n.seconds)::bigint
                               ELSE 1 END)::bigint AS amount
        FROM new_rows n
        WHERE n.source = 'platform' AND n.tenant_id IS NOT NULL
          AND n.kind IN ('llm_call', 'transcription', 'whatsapp_message')
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
    LOOP
        PERFORM changarrito_add_usage(r.tenant_id, r.metric, r.month, r.amount);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_usage_figures AFTER INSERT ON usage_ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_usage_figures();
