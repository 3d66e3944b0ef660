"""The Firebase store against the emulators: what we rely on, how images are served, clear errors."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from mirror_cli.errors import ConfigError
from mirror_cli.models import Persona
from mirror_cli.settings import load_settings
from mirror_cli.stores.firebase import FirebaseStore


@pytest.fixture
def fb(firebase_env, tmp_path):
    store = FirebaseStore(load_settings({"data_dir": tmp_path / "d"}))
    yield store
    store.close()


def test_emulator_features_we_rely_on(fb):
    """Increment is atomic under concurrent writers, create() refuses an existing document, and
    keyset pagination on a stored field terminates (cursors and offsets are ignored there)."""
    from google.api_core.exceptions import AlreadyExists, Conflict
    from google.cloud.firestore import FieldFilter, Increment

    doc = fb.db.collection("probe").document("counter")

    def bump():
        for _ in range(10):
            doc.set({"n": Increment(1)}, merge=True)

    threads = [threading.Thread(target=bump) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert doc.get().to_dict()["n"] == 50
    fb.db.collection("probe").document("x").create({"a": 1})
    with pytest.raises((AlreadyExists, Conflict)):
        fb.db.collection("probe").document("x").create({"a": 2})
    for i in range(12):
        fb.put_user(Persona(id=f"u{i:02d}", name="U"))
    assert list(fb.iter_user_ids(page_size=5)) == [f"u{i:02d}" for i in range(12)]
    q = fb.db.collection("users").where(filter=FieldFilter("uid", ">=", "u05")).order_by("uid").limit(3)
    assert [d.id for d in q.stream()] == ["u05", "u06", "u07"]
    assert fb.db.collection("users").count().get()[0][0].value == 12


def test_images_are_private_with_metadata_and_no_download_token(fb, tmp_path, monkeypatch):
    """Objects live under avatars/{uid}/ with their user in the metadata, and are served by signed
    URLs only (storage.rules let no client read them). No Firebase download token (a URL that
    never expires) is ever attached."""
    ref, thumb = fb.put_image("u1", "month-abc", b"RIFF0000WEBPVP8 ", b"RIFF0000WEBPthumb")
    assert ref == "avatars/u1/month-abc.webp" and thumb == "avatars/u1/month-abc.thumb.webp"
    blob = fb.bucket.get_blob(ref)
    assert blob.content_type == "image/webp" and blob.cache_control.startswith("private")
    assert blob.metadata == {"user": "u1"}
    # the emulators need no credentials: the emulator's own URL, never a token URL
    url = fb.image_url(ref)
    assert url.startswith(fb.bucket.client._connection.API_BASE_URL.rstrip("/")) or "127.0.0.1" in url
    assert "token=" not in url and "firebasestorage.googleapis.com" not in url
    assert fb.image_size(ref) == 16 and fb.read_image(ref).startswith(b"RIFF")


def _authorized_user_adc(tmp_path):
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "1.apps.googleusercontent.com",
                "client_secret": "not-a-secret",
                "refresh_token": "not-a-token",
            }
        )
    )
    return adc


def test_application_default_credentials_without_a_key_file(firebase_env, tmp_path, monkeypatch):
    """An authorized_user ADC file (what `gcloud auth application-default login` writes), no key
    file: the store opens on the emulators, says where its credentials come from, and says plainly
    that it cannot sign avatar URLs (a user account has no key and no service account)."""
    from mirror_cli.errors import StoreError

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_authorized_user_adc(tmp_path)))
    store = FirebaseStore(load_settings({"data_dir": tmp_path / "d"}))
    try:
        assert store.credential_source.startswith("Application Default Credentials (credentials")
        store.put_user(Persona(id="u1", name="U"))
        assert store.get_user("u1").name == "U"
        ref, _ = store.put_image("u1", "month-x", b"RIFF0000WEBPdata", None)
        problem = store.url_signing_problem()
        assert problem and "no private key and no service account" in problem
        with pytest.raises(StoreError) as err:
            store.image_url(ref)
        assert "cannot be signed" in err.value.message and "service account" in err.value.hint
    finally:
        store.close()


def test_doctor_shows_the_credential_source_and_url_signing(firebase_env, tmp_path, monkeypatch, make_core):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_authorized_user_adc(tmp_path)))
    checks = {c["check"]: c for c in make_core(store="firebase").doctor()}
    assert "Application Default Credentials" in checks["credentials"]["detail"]
    assert checks["signed urls"]["status"] == "fail" and "service account" in checks["signed urls"]["fix"]


def test_v4_signed_urls_with_a_service_account(firebase_env, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sa = tmp_path / "sa.json"
    sa.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": firebase_env["project"],
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "mirror@example.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    store = FirebaseStore(load_settings({"data_dir": tmp_path / "d", "signed_url_ttl_s": 900}))
    ref, _ = store.put_image("u1", "month-x", b"RIFF0000WEBPdata", None)
    url = store.image_url(ref)
    assert "X-Goog-Algorithm=GOOG4-RSA-SHA256" in url and "X-Goog-Expires=900" in url and "X-Goog-Signature=" in url
    assert f"/{firebase_env['bucket']}/avatars/u1/month-x.webp?" in url
    blob = store.bucket.get_blob(ref)
    assert blob.acl is None or not any(e.get("entity") == "allUsers" for e in blob.acl)  # never public
    store.close()


def test_missing_credentials_and_settings_are_clear(monkeypatch, tmp_path):
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud login here
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # and no metadata server
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(ConfigError) as err:
        FirebaseStore(load_settings({"firebase_bucket": "b", "firebase_project": "p"}))
    assert "Application Default Credentials" in err.value.message and "gcloud auth" in err.value.hint
    bad = tmp_path / "sa.json"
    bad.write_text("{not json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bad))
    with pytest.raises(ConfigError) as err:
        FirebaseStore(load_settings({"firebase_bucket": "b", "firebase_project": "p"}))
    assert "credentials file" in err.value.message


def test_missing_bucket_setting_and_unknown_bucket(firebase_env, monkeypatch, tmp_path):
    from mirror_cli.errors import StoreError

    monkeypatch.delenv("MIRROR_FIREBASE_BUCKET")
    with pytest.raises(ConfigError) as err:
        FirebaseStore(load_settings({}))
    assert "--firebase-bucket" in err.value.hint
    store = FirebaseStore(load_settings({"firebase_bucket": "no-such-bucket"}))
    with pytest.raises(StoreError) as err2:
        store.put_image("u1", "x", b"data", None)
    assert "bucket" in (err2.value.hint or "")
    store.close()


def test_operation_counts_are_persisted(fb):
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    fb.put_user(Persona(id="u1", name="U"))
    fb.get_user("u1")
    fb.flush_ops()
    counts = fb.op_counts(day)
    assert counts["writes"] >= 1 and counts["reads"] >= 1


def storage_grants(rules: str) -> list[str]:
    """Every ``allow`` statement of a storage.rules text whose condition is not plainly false: what
    it would let a Firebase client do (fake-gcs-server has no rules engine, so the text is read)."""
    import re

    code = re.sub(r"//[^\n]*", "", rules)
    allows = re.findall(r"allow\s+([a-z, ]+?)\s*(?::\s*if\s+([^;]+))?;", code)
    return [f"{ops.strip()}: {cond.strip() or 'always'}" for ops, cond in allows if cond.strip() != "false"]


def test_storage_rules_let_no_client_read_an_avatar_image():
    """Avatars are served by signed URLs only (which do not go through the rules): a client reads
    no object by its path, so a hidden or removed avatar's image cannot be fetched around the API.
    The shipped copy is the same file."""
    from conftest import ROOT

    rules = (ROOT / "storage.rules").read_text()
    assert rules == (ROOT / "mirror_cli" / "data" / "firebase" / "storage.rules").read_text()
    assert "match /{allPaths=**}" in rules and "allow read, write: if false;" in rules
    assert storage_grants(rules) == []
    # the check can fail: the owner-read rule this replaced, and a rule with no condition
    owner_read = "match /avatars/{uid}/{file} { allow read: if request.auth.uid == uid; allow write: if false; }"
    assert storage_grants(owner_read) == ["read: request.auth.uid == uid"]
    assert storage_grants("match /{p=**} { allow read; }") == ["read: always"]


def test_security_rules_are_shipped_and_named():
    """firebase.json points at the rules (executed in test_firestore_rules.py) and the indexes the
    store's queries need; storage.rules grant no client anything (test_storage_rules_...)."""
    from conftest import ROOT

    cfg = json.loads((ROOT / "firebase.json").read_text())
    fs_rules = (ROOT / cfg["firestore"]["rules"]).read_text()
    st_rules = (ROOT / cfg["storage"]["rules"]).read_text()
    assert "match /avatars/{avatarId}" in fs_rules and "allow write: if false;" in fs_rules
    assert "request.auth.uid == uid" in fs_rules
    # what the app may change on its profile (consent goes through the API, never the rules)
    allowed = ".hasOnly(['progress', 'updated_at', 'timezone', 'next_window', 'selected_avatar'])"
    assert allowed in fs_rules and "consent" not in allowed
    assert storage_grants(st_rules) == []
    indexes = json.loads((ROOT / cfg["firestore"]["indexes"]).read_text())["indexes"]
    pairs = {(i["collectionGroup"], tuple(f["fieldPath"] for f in i["fields"])) for i in indexes}
    assert ("ledger", ("uid", "seq")) in pairs and ("avatar_cache", ("uid", "doc_id")) in pairs
    # the nightly due queries: one per stage, with and without a shard's bucket range
    assert ("users", ("latest_rank", "progress.active_days")) in pairs
    assert ("users", ("latest_rank", "progress.active_days", "shard")) in pairs
    # the hourly tick: the same, only users whose nightly window has opened (test_firestore_indexes)
    assert ("users", ("latest_rank", "progress.active_days", "next_window", "shard")) in pairs
