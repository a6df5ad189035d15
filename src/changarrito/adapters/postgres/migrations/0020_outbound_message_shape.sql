-- An outbound message as the inbox shows it (``inbox.Message``): one definition for every
-- query that reads or writes one (conversations.sql), instead of the same column list in
-- each of them.
CREATE FUNCTION changarrito_outbound_message(
    o whatsapp_outbound_messages,
    OUT direction text, OUT rank integer, OUT row_id bigint, OUT author text, OUT type text,
    OUT text text, OUT wamid text, OUT at timestamptz, OUT status text,
    OUT answered_with bigint, OUT error_code integer, OUT error_title text, OUT edited boolean,
    OUT deleted boolean, OUT media jsonb, OUT template jsonb
)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'outbound', 1, o.id, o.author,
           coalesce(o.media->>'type',
                    CASE WHEN o.template_name IS NOT NULL THEN 'template' ELSE 'text' END),
           o.text, o.wamid, o.created_at, o.status, NULL::bigint, o.error_code, o.error_title,
           false, false, o.media,
           CASE WHEN o.template_name IS NOT NULL THEN
               jsonb_build_object('name', o.template_name, 'language', o.template_language,
                                  'category', o.template_category,
                                  'outsideWindow', o.outside_window, 'purpose', o.purpose)
           END
$$;
