"""The key ring: parsing ``CHANGARRITO_ENCRYPTION_KEYS``, generation, and the key file."""

from __future__ import annotations

import base64
import os
import stat
import threading

import pytest

from changarrito.adapters.crypto.keyring import KeyRing, load_or_create_keyring_file
from changarrito.domain.errors import ConfigurationError, UnknownKey

K1 = base64.b64encode(b"\x01" * 32).decode()
K2 = base64.b64encode(b"\x02" * 32).decode()


def test_the_first_key_of_the_ring_is_the_primary() -> None:
    ring = KeyRing.parse(f"k1:{K1}, k2:{K2}")
    assert ring.primary_kid == "k1"
    assert ring.kids == ("k1", "k2")
    assert ring.key("k2") == b"\x02" * 32


def test_a_ring_serializes_to_what_parse_reads_back() -> None:
    ring = KeyRing.generate().with_new_primary("next")
    assert KeyRing.parse(ring.serialize()) == ring
    assert ring.primary_kid == "next"


def test_the_repr_of_a_ring_shows_key_ids_but_no_key_material() -> None:
    ring = KeyRing.parse(f"k1:{K1},k2:{K2}")
    shown = repr(ring) + str(ring)
    assert "k1" in shown and "k2" in shown
    assert K1 not in shown and K2 not in shown and "AQEB" not in shown


def test_an_unknown_key_id_raises_unknown_key() -> None:
    with pytest.raises(UnknownKey, match="'nope'"):
        KeyRing.generate("k1").key("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        (" , ", "is empty"),
        (K1, "entry 1 is not of the form kid:base64key"),
        (f"k1:{K1},k2:not base64!", "entry 2 ('k2') is not valid standard base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "entry 1 ('k1') decodes to 5 bytes"),
        (f"k1:{K1},k1:{K2}", "entry 2 ('k1') repeats a key id"),
        (f"bad kid!:{K1}", "entry 1 is not of the form kid:base64key"),
    ],
)
def test_a_bad_key_ring_is_one_line_naming_the_entry_without_key_material(
    text: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeyRing.parse(text)
    message = str(caught.value)
    assert expected in message
    assert "CHANGARRITO_ENCRYPTION_KEYS" in message
    assert "\n" not in message
    assert K1 not in message and K2 not in message and "not base64!" not in message


def test_generated_keys_are_random_and_32_bytes() -> None:
    a, b = KeyRing.generate(), KeyRing.generate()
    assert a.primary_kid != b.primary_kid
    assert len(a.key(a.primary_kid)) == 32
    assert a.key(a.primary_kid) != b.key(b.primary_kid)


def test_a_missing_key_file_is_created_private_and_then_reused(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "home", "keyring")
    ring, created = load_or_create_keyring_file(path)
    assert created
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again, created_again = load_or_create_keyring_file(path)
    assert not created_again
    assert again == ring
    assert os.listdir(os.path.dirname(path)) == ["keyring"]  # no temporary file left behind


def test_the_key_file_is_private_even_under_a_permissive_umask(
    tmp_path: os.PathLike[str],
) -> None:
    old = os.umask(0)
    try:
        load_or_create_keyring_file(os.path.join(tmp_path, "keyring"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(os.path.join(tmp_path, "keyring")).st_mode) == 0o600


def test_processes_creating_the_key_file_at_once_agree_on_one_ring(
    tmp_path: os.PathLike[str],
) -> None:
    path = os.path.join(tmp_path, "keyring")
    results: list[tuple[KeyRing, bool]] = []
    threads = [
        threading.Thread(target=lambda: results.append(load_or_create_keyring_file(path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.serialize() for r, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_a_corrupt_key_file_names_the_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "keyring")
    with open(path, "w") as handle:
        handle.write("garbage")
    with pytest.raises(ConfigurationError, match="key ring file"):
        load_or_create_keyring_file(path)
