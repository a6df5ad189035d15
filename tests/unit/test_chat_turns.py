"""The turns a model is sent: a customer turn first, then alternating (``chat.alternating``)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.chat import ChatMessage, alternating

turns = st.lists(
    st.builds(
        ChatMessage,
        role=st.sampled_from(["user", "assistant", "system"]),
        content=st.text(min_size=1, max_size=12),
    ),
    max_size=12,
)


@given(turns)
def test_the_chat_starts_with_a_customer_turn_and_alternates(
    given_turns: list[ChatMessage],
) -> None:
    chat = [t for t in alternating(given_turns) if t.role != "system"]

    if chat:
        assert chat[0].role == "user"
    assert all(a.role != b.role for a, b in pairwise(chat))


@given(turns)
def test_nothing_after_the_first_customer_turn_is_lost_or_reordered(
    given_turns: list[ChatMessage],
) -> None:
    chat = [t for t in alternating(given_turns) if t.role != "system"]
    first = next((i for i, t in enumerate(given_turns) if t.role == "user"), len(given_turns))
    kept = [t for t in given_turns[first:] if t.role != "system"]

    assert "\n\n".join(t.content for t in chat) == "\n\n".join(t.content for t in kept)
    assert [t.role for t in chat] == [
        t.role for i, t in enumerate(kept) if i == 0 or kept[i - 1].role != t.role
    ]


@given(turns)
def test_system_messages_come_first_as_they_were(given_turns: list[ChatMessage]) -> None:
    result = alternating(given_turns)
    system = [t for t in given_turns if t.role == "system"]

    assert result[: len(system)] == system
    assert all(t.role != "system" for t in result[len(system) :])


def test_an_alternating_chat_is_sent_as_it_is() -> None:
    chat = [
        ChatMessage(role="system", content="Eres la tienda."),
        ChatMessage(role="user", content="Hola"),
        ChatMessage(role="assistant", content="¡Hola!"),
        ChatMessage(role="user", content="¿Abren hoy?"),
    ]

    assert alternating(chat) == chat
