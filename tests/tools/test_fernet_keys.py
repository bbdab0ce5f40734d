"""The local stack's Fernet key survives a new AIRFLOW_HOME and keeps reading older rows."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from tools.airflow_stack import local_fernet_keys

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/segue_airflow"


def fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys.split(",")])


def test_a_new_home_on_the_same_database_decrypts_what_an_earlier_one_wrote(tmp_path: Path):
    token = fernet(local_fernet_keys(URL, tmp_path / "first")).encrypt(b"trigger kwargs")
    assert fernet(local_fernet_keys(URL, tmp_path / "second")).decrypt(token) == b"trigger kwargs"
    other_database = local_fernet_keys(URL + "_other", tmp_path / "second")
    assert other_database != local_fernet_keys(URL, tmp_path / "second")


def test_the_key_standalone_generated_earlier_still_decrypts(tmp_path: Path):
    generated = Fernet.generate_key().decode()
    (tmp_path / "airflow.cfg").write_text(f"[core]\nfernet_key = {generated}\n")
    token = Fernet(generated).encrypt(b"old row")
    keys = local_fernet_keys(URL, tmp_path)
    assert keys.split(",")[1] == generated
    assert fernet(keys).decrypt(token) == b"old row"
