"""What a worker does with each media item (``media.action_for``) and what the customer is
told, as properties over every kind, type, state and capability."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.media import (
    ALLOWED_MIME,
    MEDIA_TYPES,
    Capabilities,
    MediaItem,
    action_for,
    failure_reply,
    filename_for,
    text_only_reply,
)

kinds = st.sampled_from(sorted(MEDIA_TYPES))
mimes = st.sampled_from(sorted({m for ms in ALLOWED_MIME.values() for m in ms} | {"", "x/y"}))
states = st.sampled_from(["received", "transcribed", "read", "unread", "failed"])
capabilities = st.builds(
    Capabilities,
    st.sets(st.sampled_from(["image", "pdf"])).map(frozenset),
    st.booleans(),
)


def item(kind: str, mime: str, state: str) -> MediaItem:
    return MediaItem(1, kind, "901", mime, None, None, kind == "audio", state, None, None, None)


@given(kinds, mimes, states, capabilities)
def test_an_item_is_downloaded_only_for_what_the_assistant_can_use(
    kind: str, mime: str, state: str, can: Capabilities
) -> None:
    action = action_for(item(kind, mime, state), can)

    if action == "transcribe":
        assert kind == "audio" and can.transcribes
    if action == "attach":
        assert (kind == "image" and "image" in can.reads) or (
            kind == "document" and mime == "application/pdf" and "pdf" in can.reads
        )
    if kind in ("video", "sticker") and state not in ("transcribed", "failed"):
        assert action == "unread"  # never downloaded, never sent to a model


@given(kinds, mimes, capabilities)
def test_a_transcribed_item_is_never_transcribed_again_and_a_failed_one_never_retried(
    kind: str, mime: str, can: Capabilities
) -> None:
    assert action_for(item(kind, mime, "transcribed"), can) == "done"
    assert action_for(item(kind, mime, "failed"), can) == "failed"


@given(capabilities)
def test_the_text_only_reply_names_exactly_what_the_assistant_reads(can: Capabilities) -> None:
    reply = text_only_reply(can)

    assert ("notas de voz" in reply) == can.transcribes == ("voice notes" in reply)
    assert ("fotos" in reply) == ("image" in can.reads) == ("photos" in reply)
    assert ("PDF" in reply) == ("pdf" in can.reads)
    assert reply.startswith("Solo puedo leer mensajes de texto")


@given(st.lists(kinds, min_size=1), capabilities)
def test_a_failure_reply_names_the_first_item_that_failed(
    failed: list[str], can: Capabilities
) -> None:
    names = {
        "audio": "tu nota de voz",
        "image": "tu foto",
        "video": "tu video",
        "document": "tu documento",
        "sticker": "tu sticker",
    }
    assert f"no pude abrir {names[failed[0]]}." in failure_reply(failed, can)


def test_a_file_name_says_the_format_and_never_carries_a_path() -> None:
    assert filename_for("audio", "audio/ogg; codecs=opus", None) == "voice-note.ogg"
    assert filename_for("image", "image/png", None) == "photo.png"
    assert filename_for("document", "application/pdf", "ticket.pdf") == "ticket.pdf"
    assert filename_for("document", "application/pdf", "../../etc/passwd") == "document.pdf"
