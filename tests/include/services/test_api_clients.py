"""API clients: keys made once and stored hashed, names checked, revocation final."""

from __future__ import annotations

import pytest

from include.services.api_clients import (
    ClientError,
    client_of_key,
    create_client,
    list_clients,
    revoke_client,
)
from segue.store.engine import session_scope


def test_create_returns_a_key_that_names_its_client(clean_db):
    with session_scope(clean_db) as session:
        key = create_client(session, "shop-1")
    assert key.startswith("sk_") and len(key) > 40
    with session_scope(clean_db) as session:
        assert client_of_key(session, key) == "shop-1"
        assert client_of_key(session, key + "x") is None
        assert client_of_key(session, "not-sk") is None
        [client] = list_clients(session)
    assert (client.name, client.active, client.key_prefix) == ("shop-1", True, key[:10])


def test_a_name_is_used_once_even_after_revocation(clean_db):
    with session_scope(clean_db) as session:
        key = create_client(session, "shop")
    with session_scope(clean_db) as session:
        assert revoke_client(session, "shop") is True
        assert revoke_client(session, "shop") is False
    with session_scope(clean_db) as session:
        assert client_of_key(session, key) is None
        assert not list_clients(session)[0].active
    with (
        pytest.raises(ClientError, match="exists already") as raised,
        session_scope(clean_db) as session,
    ):
        create_client(session, "shop")
    assert raised.value.field == "name"


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 65, "semi;colon"])
def test_bad_names_are_refused_naming_the_field(clean_db, name):
    with pytest.raises(ClientError, match=r"^name: ") as raised, session_scope(clean_db) as session:
        create_client(session, name)
    assert raised.value.field == "name"
    with session_scope(clean_db) as session:
        assert list_clients(session) == []


def test_revoking_an_unknown_client_is_an_error(clean_db):
    with (
        pytest.raises(ClientError, match="no client named 'ghost'"),
        session_scope(clean_db) as session,
    ):
        revoke_client(session, "ghost")
