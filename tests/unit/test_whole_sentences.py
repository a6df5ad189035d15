"""An answer the model cut at its output limit is kept up to its last whole sentence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.text import whole_sentences


@pytest.mark.parametrize(
    ("cut", "kept"),
    [
        ("Claro, hay tortillas. También tenemos tostadas de ma", "Claro, hay tortillas."),
        ("¿Cuántas quieres? ¡Te las aparto! Y si gust", "¿Cuántas quieres? ¡Te las aparto!"),
        ('Dijo "gracias." y luego se fu', 'Dijo "gracias."'),
        ("Precios:\n- maíz $20\n- harina $2", "Precios:\n- maíz $20"),
        ("Listo.", "Listo."),
        ("El total es 3.50 pes", None),
        ('{"', None),
        ("", None),
    ],
)
def test_the_cut_answer_keeps_its_whole_sentences(cut: str, kept: str | None) -> None:
    assert whole_sentences(cut) == kept


@given(st.text(alphabet=st.sampled_from("ab .!?\n\"'"), max_size=40))
def test_what_is_kept_is_a_prefix_that_ends_a_sentence_or_a_line(text: str) -> None:
    kept = whole_sentences(text)

    if kept is not None:
        assert kept and text.strip().startswith(kept)
        rest = text.strip()[len(kept) :]
        line_end = rest.lstrip(" ")[:1] in ("\n", "")
        assert kept[-1] in ".!?\"'" or line_end  # a sentence's end, or a line's
