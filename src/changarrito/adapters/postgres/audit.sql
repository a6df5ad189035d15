-- Queries of the audit log (audit.py), in the format of queries.sql.

-- name: record_audit
INSERT INTO integration_audit_log
    (tenant_id, actor, integration, provider, action, outcome, client_ip, user_agent, details,
     created_at)
VALUES
    (%(tenant_id)s, %(actor)s, %(integration)s, %(provider)s, %(action)s, %(outcome)s,
     %(client_ip)s, %(user_agent)s, %(details)s, %(at)s);
