-- Queries of the synced message templates (templates.py, migration 0015). Scoped by owner:
-- ``tenant_id`` is the tenant, NULL the platform's own account (``IS NOT DISTINCT FROM``).

-- name: list_templates
-- A page of the owner's templates by name, language and row id, after the previous page's
-- last one; ``status``: only those of this status; ``name``: only those of exactly this name.
SELECT id, tenant_id, business_account_id, template_id, name, language, category, status,
       quality, parameter_format, components, parameters, synced_at, updated_at
FROM whatsapp_templates
WHERE tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
  AND (%(after_name)s::text IS NULL
       OR (name, language, id)
          > (%(after_name)s::text, %(after_language)s::text, %(after_id)s::bigint))
ORDER BY name, language, id
LIMIT %(limit)s

-- name: lock_template_owner
-- One sync of an owner's templates at a time (until the transaction ends).
SELECT pg_advisory_xact_lock(
    hashtextextended('changarrito.templates:' || coalesce(%(tenant_id)s::text, 'platform'), 0))

-- name: upsert_template
-- Stores one template Graph listed (``synced_at`` is the transaction's time, so the removal
-- below keeps exactly what this sync listed). A quality Graph did not give is kept.
INSERT INTO whatsapp_templates
    (tenant_id, business_account_id, template_id, name, language, category, sub_category,
     status, quality, parameter_format, components, parameters, synced_at, updated_at)
VALUES
    (%(tenant_id)s::uuid, %(waba)s, %(template_id)s, %(name)s, %(language)s, %(category)s,
     %(sub_category)s, %(status)s, %(quality)s, %(parameter_format)s, %(components)s,
     %(parameters)s, now(), now())
ON CONFLICT (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid),
             business_account_id, name, language)
DO UPDATE SET template_id = EXCLUDED.template_id,
              category = EXCLUDED.category,
              sub_category = EXCLUDED.sub_category,
              status = EXCLUDED.status,
              quality = coalesce(EXCLUDED.quality, whatsapp_templates.quality),
              parameter_format = EXCLUDED.parameter_format,
              components = EXCLUDED.components,
              parameters = EXCLUDED.parameters,
              synced_at = now(),
              updated_at = now()

-- name: remove_unlisted_templates
-- After a complete listing: the owner's templates it did not list (synced before this
-- transaction), and any of another account (the tenant changed its number).
DELETE FROM whatsapp_templates
WHERE tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
  AND (business_account_id <> %(waba)s OR synced_at < now())

-- name: update_template
-- A template webhook: status, category and quality of every copy of the account's template
-- (by Meta's id, else by name and language), each only when the webhook says it.
UPDATE whatsapp_templates
SET status = coalesce(%(status)s::text, status),
    category = coalesce(%(category)s::text, category),
    quality = coalesce(%(quality)s::text, quality),
    updated_at = now()
WHERE business_account_id = %(waba)s
  AND CASE WHEN %(template_id)s::text IS NOT NULL THEN template_id = %(template_id)s::text
           ELSE name = %(name)s::text AND language = %(language)s::text END

-- name: template_owners
-- Tenants with an active WhatsApp credential of their own: their templates are synced.
SELECT DISTINCT tenant_id
FROM tenant_integration_credentials
WHERE integration_type = 'whatsapp' AND is_active
ORDER BY tenant_id

-- name: template_synced_within
-- Whether any of the owner's templates was listed by a sync in the last seconds: another
-- worker's round synced it already.
SELECT EXISTS (
    SELECT 1 FROM whatsapp_templates
    WHERE tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
      AND synced_at > now() - make_interval(secs => %(seconds)s))
