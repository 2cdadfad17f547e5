"""Sigstore keyless signing of the evidence manifest (``--sign-keyless``) and its check.

No network and no Sigstore service exist here, so the check is exercised against a Sigstore
world made in the test: a certificate authority, a CT log and a transparency log, each a
key made here and named in a trusted root, and a bundle they issue for the manifest's
in-toto statement. Every signature in it is real (the Fulcio-style certificate with its
embedded SCT, the DSSE signature, the Rekor entry's signed checkpoint and inclusion
promise), and sigstore's own ``Verifier.verify_dsse`` judges it, unmocked: the same path
the production trusted root takes. The formats follow the Sigstore specifications
(RFC 6962 section 3.2 for the SCT over the precertificate, the C2SP signed-note checkpoint,
Rekor's ``dsse`` 0.0.1 entry and its signed entry timestamp), the way sigstore-python's own
offline tests (test/unit/verify/test_verifier_rsa_bundle.py) build theirs.

Signing itself needs Fulcio and Rekor: only its refusals are tested (no library, no
ambient identity), with the environment a CI runner would show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.verify.evidence import keyless, sign
from aicp.verify.reports import write
from aicp.verify.result import Verdict
from tests.verify.conftest import submission, template
from tests.verify.test_reports import report_for

sigstore = pytest.importorskip("sigstore", reason="the sigstore extra is not installed")

IDENTITY, ISSUER = "release-bot@example.org", "https://issuer.example.org"
WHEN = datetime(2026, 1, 2, tzinfo=UTC)
AMBIENT = ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL",
           "GOOGLE_SERVICE_ACCOUNT_NAME", "BUILDKITE", "GITLAB_CI", "CIRCLECI",
           "SIGSTORE_ID_TOKEN", keyless.TOKEN_ENV)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def der_octets(data: bytes) -> bytes:
    """A DER OCTET STRING (the SCT list extension's value)."""
    n = len(data)
    size = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82]) + \
        n.to_bytes(2, "big")
    return b"\x04" + size + data


class World:
    """A CA, a CT log and a transparency log, and the trusted root naming them."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.ca_key, self.ct_key, self.log_key = (ec.generate_private_key(ec.SECP256R1())
                                                  for _ in range(3))
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test fulcio")])
        self.ca = (x509.CertificateBuilder().subject_name(self.ca_name)
                   .issuer_name(self.ca_name).public_key(self.ca_key.public_key())
                   .serial_number(1).not_valid_before(WHEN - timedelta(days=30))
                   .not_valid_after(WHEN + timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                       self.ca_key.public_key()), False)
                   .sign(self.ca_key, hashes.SHA256()))

    def trusted_root(self, ct_key=None, log_key=None):
        from cryptography.hazmat.primitives import serialization
        from sigstore.models import TrustedRoot
        from sigstore_models.trustroot.v1 import TrustedRoot as Model

        def log(key, url):
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "logId": {"keyId": b64(hashlib.sha256(spki(key)).digest())},
                    "publicKey": {"rawBytes": b64(spki(key)),
                                  "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": "2025-01-01T00:00:00Z"}}}

        doc = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
               "tlogs": [log(log_key or self.log_key, "https://rekor.test")],
               "ctlogs": [log(ct_key or self.ct_key, "https://ctfe.test")],
               "certificateAuthorities": [{
                   "subject": {"commonName": "test fulcio", "organization": "test"},
                   "uri": "https://fulcio.test",
                   "certChain": {"certificates": [{"rawBytes": b64(self.ca.public_bytes(
                       serialization.Encoding.DER))}]},
                   "validFor": {"start": "2025-01-01T00:00:00Z"}}]}
        return TrustedRoot(Model.from_json(json.dumps(doc)))

    def verifier(self, **keys):
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.trusted_root(**keys))

    def certificate(self, key, identity: str, issuer: str):
        """A Fulcio-style leaf for ``identity``: the issuer extension, code signing, and an
        SCT from the CT log over its precertificate (RFC 6962 section 3.2)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

        builder = (x509.CertificateBuilder().subject_name(x509.Name([]))
                   .issuer_name(self.ca_name).public_key(key.public_key()).serial_number(7)
                   .not_valid_before(WHEN - timedelta(minutes=5))
                   .not_valid_after(WHEN + timedelta(minutes=5))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False,
                                                False, False, False), True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                                  False)
                   .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]),
                                  True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.ca_key.public_key()), False)
                   # Fulcio's OIDC issuer extension (1.3.6.1.4.1.57264.1.1, raw bytes).
                   .add_extension(x509.UnrecognizedExtension(
                       x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()),
                       False))
        tbs = builder.sign(self.ca_key, hashes.SHA256()).tbs_certificate_bytes
        millis = int(WHEN.timestamp() * 1000)
        signed = (struct.pack("!BBQH", 0, 0, millis, 1)  # v1, certificate_timestamp, precert
                  + hashlib.sha256(spki(self.ca_key)).digest()
                  + len(tbs).to_bytes(3, "big") + tbs + b"\x00\x00")
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (b"\x00" + hashlib.sha256(spki(self.ct_key)).digest()
               + struct.pack("!QH", millis, 0) + struct.pack("!BBH", 4, 3, len(sig)) + sig)
        scts = struct.pack("!HH", len(sct) + 2, len(sct)) + sct
        return builder.add_extension(x509.UnrecognizedExtension(
            ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, der_octets(scts)),
            False).sign(self.ca_key, hashes.SHA256())

    def bundle(self, payload: bytes, identity: str = IDENTITY, issuer: str = ISSUER) -> str:
        """A Sigstore bundle v0.3 of ``payload`` in a DSSE envelope, logged as a Rekor
        ``dsse`` 0.0.1 entry with its inclusion proof, checkpoint and promise."""
        import rfc8785
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.certificate(key, identity, issuer)
        sig = key.sign(sign.pae(sign.PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
        env = {"payload": b64(payload), "payloadType": sign.PAYLOAD_TYPE,
               "signatures": [{"sig": b64(sig)}]}
        body = rfc8785.dumps({"kind": "dsse", "apiVersion": "0.0.1", "spec": {
            "payloadHash": {"algorithm": "sha256",
                            "value": hashlib.sha256(payload).hexdigest()},
            "envelopeHash": {"algorithm": "sha256",
                             "value": hashlib.sha256(json.dumps(env).encode()).hexdigest()},
            "signatures": [{"signature": b64(sig), "verifier": b64(
                cert.public_bytes(serialization.Encoding.PEM))}]}})
        log_id = hashlib.sha256(spki(self.log_key)).digest()
        leaf = hashlib.sha256(b"\x00" + body).digest()  # a tree of one: the root
        note = f"rekor.test\n1\n{b64(leaf)}\n"
        note_sig = self.log_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        when = int(WHEN.timestamp())
        promise = self.log_key.sign(rfc8785.dumps({
            "body": b64(body), "integratedTime": when, "logID": log_id.hex(), "logIndex": 0}),
            ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(cert.public_bytes(
                    serialization.Encoding.DER))},
                "tlogEntries": [{
                    "logIndex": "0", "logId": {"keyId": b64(log_id)},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(when), "canonicalizedBody": b64(body),
                    "inclusionPromise": {"signedEntryTimestamp": b64(promise)},
                    "inclusionProof": {
                        "logIndex": "0", "rootHash": b64(leaf), "treeSize": "1", "hashes": [],
                        "checkpoint": {"envelope": note + "\n\u2014 rekor.test "
                                       + b64(log_id[:4] + note_sig) + "\n"}}}]},
            "dsseEnvelope": env})


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture
def signed(tmp_path, world):
    """A submission whose manifest's statement the test world's Sigstore signed."""
    tmpl = template("1.37")
    write(report_for(tmpl, [Verdict.PASS] * len(tmpl.ids)), tmpl, ["json", "checklist"],
          tmp_path / "out", cluster={"kubeSystemUid": "u-1", "kubernetesVersion": "v1.37.0"})
    folder = submission(tmp_path / "out")
    manifest = (folder / sign.MANIFEST).read_text()
    (folder / sign.SIGSTORE_BUNDLE).write_text(world.bundle(sign.statement(manifest)))
    return folder


def test_a_sigstore_bundle_verifies_for_the_expected_identity_and_issuer(signed, world):
    found = sign.check(signed, identity=IDENTITY, issuer=ISSUER,
                       sigstore_verifier=world.verifier())
    assert found.ok, found.message
    listed = len(json.loads((signed / sign.MANIFEST).read_text())["files"])
    assert found.message == (f"{listed} files match the manifest; Sigstore signature by "
                             f"{IDENTITY} ({ISSUER}) verified")


@pytest.mark.parametrize(("identity", "issuer", "keys", "says"), [
    ("someone@example.org", ISSUER, {}, "NOT verified for someone@example.org "
     f"({ISSUER}): Certificate's SANs do not match someone@example.org"),
    (IDENTITY, "https://other.example.org", {}, "Certificate's OIDCIssuer does not match"),
    (IDENTITY, ISSUER, {"log_key": "other"}, "invalid log entry: checkpoint: invalid "
                                             "signature"),  # another transparency log
    (IDENTITY, ISSUER, {"ct_key": "other"}, "failed to verify SCT on signing certificate"),
])
def test_another_signer_issuer_or_root_of_trust_is_never_called_verified(
        signed, world, identity, issuer, keys, says):
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = {k: ec.generate_private_key(ec.SECP256R1()) for k in keys}
    found = sign.check(signed, identity=identity, issuer=issuer,
                       sigstore_verifier=world.verifier(**keys))
    assert not found.ok and found.message.startswith(f"{sign.SIGSTORE_BUNDLE}: ")
    assert says in found.message, found.message


def test_a_bundle_over_another_manifest_or_an_edited_one_fails(signed, world):
    other = world.bundle(sign.statement((signed / sign.MANIFEST).read_text().replace(
        '"runId"', '"runId" ', 1)))
    (signed / sign.SIGSTORE_BUNDLE).write_text(other)
    found = sign.check(signed, identity=IDENTITY, issuer=ISSUER,
                       sigstore_verifier=world.verifier())
    assert (found.ok, found.message) == (False, f"{sign.MANIFEST}: does not match the "
                                                "Sigstore-signed statement's subject")
    bundle = json.loads(world.bundle(sign.statement((signed / sign.MANIFEST).read_text())))
    bundle["dsseEnvelope"]["payload"] = b64(b'{"_type": "forged"}')
    (signed / sign.SIGSTORE_BUNDLE).write_text(json.dumps(bundle))
    found = sign.check(signed, identity=IDENTITY, issuer=ISSUER,
                       sigstore_verifier=world.verifier())
    assert not found.ok and "NOT verified" in found.message


def test_without_the_expected_identity_a_sigstore_bundle_is_never_called_verified(signed):
    result = CliRunner().invoke(app, ["verify", "evidence", "check", str(signed)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"evidence NOT ok: {sign.SIGSTORE_BUNDLE}: a Sigstore bundle, NOT verified: pass "
        "--cert-identity and --cert-oidc-issuer (who you expect signed it)")


def test_beside_a_key_signature_an_unchecked_sigstore_bundle_is_said_to_be_unchecked(
        tmp_path, world):
    from tests.verify.test_submission import ed25519_key

    private, public = ed25519_key(tmp_path)
    tmpl = template("1.37")
    write(report_for(tmpl), tmpl, ["checklist"], tmp_path / "out",
          signer=sign.load_signer(private))
    folder = submission(tmp_path / "out")
    (folder / sign.SIGSTORE_BUNDLE).write_text(world.bundle(sign.statement(
        (folder / sign.MANIFEST).read_text())))
    found = sign.check(folder, public)
    assert found.ok and found.message.endswith(
        f"; the Sigstore bundle {sign.SIGSTORE_BUNDLE} was not checked (pass "
        "--cert-identity and --cert-oidc-issuer)"), found.message
    both = sign.check(folder, public, identity=IDENTITY, issuer=ISSUER,
                      sigstore_verifier=world.verifier())
    assert both.ok and "signature by key " in both.message and \
        f"Sigstore signature by {IDENTITY}" in both.message


def test_without_an_ambient_identity_keyless_signing_is_refused_before_any_probe(
        kubeapi_factory, tmp_path, monkeypatch, capsys):
    from aicp.verify import session

    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)
    kube = kubeapi_factory("empty", minor="1.37")
    code = session.run(session.Options(kubeconfig=kube.write_kubeconfig(tmp_path / "kc.yaml"),
                                       output=["json"], output_dir=tmp_path / "out",
                                       sign_keyless=True))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        "error: --sign-keyless: no ambient OIDC identity token here (CI offers one, e.g. "
        "GitHub Actions with `permissions: id-token: write`; or set "
        "$SIGSTORE_IDENTITY_TOKEN); sign with --sign-key instead")
    assert not (tmp_path / "out").exists()


def test_without_the_sigstore_package_keyless_is_one_line_naming_the_extra(
        signed, monkeypatch):
    monkeypatch.setitem(sys.modules, "sigstore", None)  # as if not installed
    with pytest.raises(keyless.KeylessError, match=r"^--sign-keyless needs the sigstore "
                       r"package, an optional extra of aicp: pip install 'aicp\[sigstore\]'$"):
        keyless.identity_token()
    found = sign.check(signed, identity=IDENTITY, issuer=ISSUER)
    assert not found.ok and found.message == (
        f"{sign.SIGSTORE_BUNDLE}: NOT verified: checking a Sigstore bundle needs the "
        "sigstore package, an optional extra of aicp: pip install 'aicp[sigstore]'")


def test_a_failed_keyless_signature_is_a_line_and_the_reports_are_still_written(
        tmp_path, monkeypatch):
    # Signing reaches Sigstore's TUF root, Fulcio and Rekor; here there is no network, so
    # signing with a token fails, and says so, and nothing claims a signature.
    notes: list[str] = []
    tmpl = template("1.37")
    monkeypatch.setattr(keyless, "sign", lambda statement, token: (_ for _ in ()).throw(
        keyless.KeylessError("Sigstore signing failed: ConnectionError: no network")))
    write(report_for(tmpl), tmpl, ["json"], tmp_path / "out", note=notes.append,
          keyless=object())
    assert notes == ["signing: Sigstore signing failed: ConnectionError: no network; no "
                     "Sigstore bundle written"]
    # The identity is read again when signing (an ambient token lives minutes): gone by
    # then, that is the line, and still nothing claims a signature.
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)
    notes.clear()
    write(report_for(tmpl), tmpl, ["json"], tmp_path / "again", note=notes.append,
          keyless=keyless.identity_token)
    assert notes == ["signing: --sign-keyless: no ambient OIDC identity token here (CI "
                     "offers one, e.g. GitHub Actions with `permissions: id-token: write`; "
                     "or set $SIGSTORE_IDENTITY_TOKEN); sign with --sign-key instead; no "
                     "Sigstore bundle written"]
    assert not (tmp_path / "again" / sign.SIGSTORE_BUNDLE).exists()
    assert (tmp_path / "out" / sign.MANIFEST).is_file()
    assert not (tmp_path / "out" / sign.SIGSTORE_BUNDLE).exists()
    assert not Path(tmp_path / "out" / sign.ENVELOPE).exists()


def test_offline_the_check_uses_sigstores_own_trusted_root_and_rejects_a_foreign_ca(signed):
    # The production trusted root the sigstore package holds knows nothing of this test's
    # CA: read without the network, it is used, and the bundle is rejected, not verified.
    result = CliRunner().invoke(app, ["verify", "evidence", "check", str(signed),
                                      "--cert-identity", IDENTITY, "--cert-oidc-issuer",
                                      ISSUER, "--offline"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"evidence NOT ok: {sign.SIGSTORE_BUNDLE}: NOT verified "
                                    f"for {IDENTITY} ({ISSUER}): failed to build timestamp "
                                    "certificate chain"), result.output
