"""The audit log in PostgreSQL: what each write through the tenant API leaves behind."""

from __future__ import annotations


async def test_every_write_appends_an_audit_record_without_the_secret(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    key = "sk-audited-tenant-key-1010"
    headers = {**headers, "User-Agent": "shop-admin/1.0"}
    await app_client.put(
        "/api/v1/integrations/llm",
        json={"provider": "openai", "credentials": {"apiKey": key}},
        headers=headers,
    )
    await app_client.post("/api/v1/integrations/llm/verify", headers=headers)
    await app_client.delete("/api/v1/integrations/llm", headers=headers)

    async with app_service.storage.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor, integration, provider, action, outcome, client_ip, user_agent,"
            " details::text FROM integration_audit_log WHERE tenant_id = %s ORDER BY id",
            (tenant_id,),
        )
        rows = await cur.fetchall()
    assert [(r[1], r[3]) for r in rows] == [
        ("tenant", "create"),
        ("llm", "configure"),
        ("llm", "verify"),
        ("llm", "delete"),
    ]
    configure = rows[1]
    assert configure[0] == f"user-of-{tenant_id}"
    assert configure[2] == "openai"
    assert configure[5]  # the client's address
    assert configure[6] == "shop-admin/1.0"
    assert key not in repr(rows)
