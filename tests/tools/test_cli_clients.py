"""``segue clients create|list|revoke`` on the real business store."""

from __future__ import annotations

from sqlalchemy import select

from include.payments.tables import ApiClientRow
from include.services.api_clients import client_of_key, hash_key
from segue.store.engine import session_scope
from tools.cli import main
from tools.up import ensure_demo_client


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_key_once_list_shows_a_prefix_revoke_ends_it(clean_db, pg_url, capsys):
    code, out, err = run(capsys, "clients", "create", "shop", "--url", pg_url)
    assert code == 0
    key = out.strip()
    assert key.startswith("sk_") and "shown only once" in err
    with session_scope(clean_db) as session:
        assert client_of_key(session, key) == "shop"
        assert session.scalar(select(ApiClientRow.key_hash)) == hash_key(key)

    code, out, _ = run(capsys, "clients", "list", "--url", pg_url)
    assert code == 0 and out.startswith(f"shop\t{key[:10]}...") and "active" in out
    assert key not in out

    assert run(capsys, "clients", "revoke", "shop", "--url", pg_url)[:2] == (
        0,
        "client 'shop' revoked\n",
    )
    assert "revoked" in run(capsys, "clients", "list", "--url", pg_url)[1]
    with session_scope(clean_db) as session:
        assert client_of_key(session, key) is None


def test_errors_name_the_field_and_exit_2(clean_db, pg_url, capsys):
    assert run(capsys, "clients", "create", "shop", "--url", pg_url)[0] == 0
    code, out, err = run(capsys, "clients", "create", "shop", "--url", pg_url)
    assert (code, out) == (2, "") and "name: a client named 'shop' exists already" in err
    code, _, err = run(capsys, "clients", "create", "no spaces", "--url", pg_url)
    assert code == 2 and "name: 'no spaces' is not a client name" in err
    code, _, err = run(capsys, "clients", "revoke", "ghost", "--url", pg_url)
    assert code == 2 and "no client named 'ghost'" in err


def test_make_run_keeps_one_demo_key_until_it_is_revoked(clean_db, pg_url, tmp_path):
    name, path = ensure_demo_client(pg_url, tmp_path)
    key = path.read_text().strip()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert ensure_demo_client(pg_url, tmp_path) == (name, path)  # the same key next time
    assert path.read_text().strip() == key
    with session_scope(clean_db) as session:
        session.get(ApiClientRow, name).revoked_at = session.get(ApiClientRow, name).created_at
    new_name, _ = ensure_demo_client(pg_url, tmp_path)
    assert new_name != name and path.read_text().strip() != key
