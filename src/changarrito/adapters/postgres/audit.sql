-- Queries of the audit log (audit.py), in the format of queries.sql.

-- name: record_audit
INSERT INTO integration_audit_log
    (tenant_id, actor, integration, provider, action, outcome, client_ip, user_agent, details,
     created_at)
VALUES
    (%(tenant_id)s, %(actor)s, %(integration)s, %(provider)s, %(action)s, %(outcome)s,
     %(client_ip)s, %(user_agent)s, %(details)s, %(at)s);

-- name: audit_entries_for
-- The tenant's most recent entries, newest first.
SELECT tenant_id, actor, integration, action, provider, outcome, client_ip, user_agent,
       details, created_at AS at
FROM integration_audit_log
WHERE tenant_id = %(tenant_id)s
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;
