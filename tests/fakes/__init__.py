"""Local fake upstreams as real HTTP servers on 127.0.0.1, for tests of the real service
process: ``fake_graph.FakeGraph`` (Meta's Graph API) and ``fake_llm.FakeLLM`` (an
OpenAI-compatible chat API). Each runs in a thread of the test process, records every request
and answers from a script the test can change while the service runs."""
