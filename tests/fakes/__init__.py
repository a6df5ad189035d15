"""Fakes of everything the service talks to, for tests.

- ``memory``: in-memory implementations of the storage ports (tenants and credentials, audit
  log, payments, webhook intake, Meta apps index, message log, schema), held to their
  PostgreSQL adapters by ``tests/integration/test_fakes_match_postgres.py``; ``service``
  builds the whole ``Service`` on them (``memory_storage()``).
- ``fake_graph.FakeGraph`` (Meta's Graph API) and ``fake_llm.FakeLLM`` (an OpenAI-compatible
  chat API): local fake upstreams as real HTTP servers on 127.0.0.1, for tests of the real
  service process. Each runs in a thread of the test process, records every request and
  answers from a script the test can change while the service runs.
"""
