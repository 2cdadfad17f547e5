"""The digest manifest over a bundle and its signature: an in-toto Statement v1 in a DSSE
envelope, signed with a key the user gives.

- ``results/aicp-manifest.json``: every file's SHA-256 (relative path -> hex), the suite commit,
  aicp's version, the cluster's identity (kube-system's UID, the API server's version).
- ``results/aicp-manifest.dsse.json``: a DSSE envelope (secure-systems-lab/dsse, envelope.md and
  protocol.md: ``payloadType``, base64 ``payload``, ``signatures[].keyid/sig``; the signature
  is over ``PAE(type, body)``) whose payload is an in-toto Statement v1
  (in-toto/attestation spec/v1/statement.md: ``_type`` https://in-toto.io/Statement/v1,
  ``subject`` name + digest, ``predicateType``, ``predicate``) with the manifest as subject.
- ``results/aicp-signer.pub.pem``: the public half of the signing key, for convenience; a
  check trusts it only when no ``--key`` is given, and then says so.
- ``results/aicp-manifest.sigstore.json``: the same statement signed keylessly with Sigstore
  (``--sign-keyless``, ``keyless.py``), beside or instead of the key signature.

Keys: Ed25519 or ECDSA (P-256 with SHA-256, P-384 with SHA-384) PEM private keys, read with
``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "results/aicp-manifest.json"
ENVELOPE = "results/aicp-manifest.dsse.json"
PUBLIC_KEY = "results/aicp-signer.pub.pem"
SIGSTORE_BUNDLE = "results/aicp-manifest.sigstore.json"
SIGNED = (MANIFEST, ENVELOPE, PUBLIC_KEY, SIGSTORE_BUNDLE)
# aicp's own bookkeeping in the folder (the list of files it wrote), not evidence.
UNSIGNED = (".aicp-files",)
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# aicp names its labels under aicp.dev (aicp.dev/verify-run); its predicate type likewise.
PREDICATE_TYPE = "https://aicp.dev/verify/evidence-manifest/v1"
PASSWORD_ENV = "AICP_SIGN_KEY_PASSWORD"


class SignKeyError(ValueError):
    """A signing or verifying key that cannot be used: one line naming the fix."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def manifest(contents: dict[str, str | bytes], *, aicp_version: str, run_id: str,
             checklist_version: str, cluster: dict[str, str], suite: dict[str, Any] | None,
             submission_check: dict[str, list[str]] | None = None) -> str:
    """The manifest's text over ``contents`` (every file but the manifest's own)."""
    files = {name: sha256(_bytes(data)) for name, data in sorted(contents.items())
             if name not in SIGNED and name not in UNSIGNED}
    doc = {"aicpVersion": aicp_version, "runId": run_id, "checklistVersion": checklist_version,
           "cluster": cluster, "suite": suite,
           "submissionCheck": None if submission_check is None else {
               gen: {"errors": len(errors), "first": errors[0] if errors else None}
               for gen, errors in submission_check.items()},
           "files": files}
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding (protocol.md): what is signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass
class Signer:
    key: Any
    public_pem: bytes
    keyid: str

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        assert isinstance(self.key, ec.EllipticCurvePrivateKey)
        return self.key.sign(data, ec.ECDSA(_hash_for(self.key.curve)))


def _hash_for(curve: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA384() if curve.key_size >= 384 else hashes.SHA256()


def _public_pem(public: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def keyid(public: Any) -> str:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo, hex."""
    from cryptography.hazmat.primitives import serialization

    return sha256(public.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))


def load_signer(path: Path) -> Signer:
    """An Ed25519 or ECDSA PEM private key (password from $AICP_SIGN_KEY_PASSWORD)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    except ImportError:
        raise SignKeyError("--sign-key needs the cryptography package: pip install "
                        "cryptography") from None
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise SignKeyError(f"--sign-key {path}: cannot read it ({exc.strerror or exc})") from None
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password
                                                 else None)
    except TypeError:
        raise SignKeyError(f"--sign-key {path} is encrypted: set {PASSWORD_ENV} to its "
                        "password") from None
    except ValueError:
        raise SignKeyError(f"--sign-key {path} is not a PEM private key (or the password in "
                        f"{PASSWORD_ENV} is wrong): give an Ed25519 or ECDSA PEM, e.g. "
                        "`openssl genpkey -algorithm ed25519 -out key.pem`") from None
    if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        raise SignKeyError(f"--sign-key {path} is a {type(key).__name__.removeprefix('_')}: "
                        "give an Ed25519 or ECDSA key")
    public = key.public_key()
    return Signer(key, _public_pem(public), keyid(public))


def statement(manifest_text: str) -> bytes:
    """The in-toto Statement v1 whose subject is the manifest: what every signature signs."""
    doc = json.loads(manifest_text)
    found = {"_type": STATEMENT_TYPE,
             "subject": [{"name": MANIFEST,
                          "digest": {"sha256": sha256(manifest_text.encode())}}],
             "predicateType": PREDICATE_TYPE,
             "predicate": {k: doc[k] for k in ("aicpVersion", "runId", "checklistVersion",
                                               "cluster", "suite")}}
    return json.dumps(found, sort_keys=True).encode()


def envelope(manifest_text: str, signer: Signer) -> str:
    """The DSSE envelope of an in-toto Statement whose subject is the manifest."""
    payload = statement(manifest_text)
    sig = signer.sign(pae(PAYLOAD_TYPE, payload))
    return json.dumps({"payloadType": PAYLOAD_TYPE,
                       "payload": base64.b64encode(payload).decode(),
                       "signatures": [{"keyid": signer.keyid,
                                       "sig": base64.b64encode(sig).decode()}]},
                      indent=2) + "\n"


def signed_files(contents: dict[str, str | bytes], signer: Signer | None,
                 **facts: Any) -> dict[str, str | bytes]:
    """The manifest, and with a key the envelope and public key, to add to ``contents``."""
    text = manifest(contents, **facts)
    out: dict[str, str | bytes] = {MANIFEST: text}
    if signer:
        out[ENVELOPE] = envelope(text, signer)
        out[PUBLIC_KEY] = signer.public_pem
    return out


# Checking a bundle -----------------------------------------------------------------------
@dataclass
class Checked:
    ok: bool
    message: str  # the first problem, naming the file; or what was verified


def _verify(public: Any, sig: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(sig, data)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(sig, data, ec.ECDSA(_hash_for(public.curve)))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() or p.is_symlink())


def bundle_root(folder: Path) -> Path:
    """The folder the manifest covers: ``folder`` itself, or the one submission folder
    (``v<version>/<product>/``) a run with ``--output checklist`` wrote in it."""
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        return folder
    found = sorted(folder.glob(f"v*.*/*/{MANIFEST}"))
    return found[0].parents[1] if len(found) == 1 else folder


def check(folder: Path, key: Path | None = None, *, identity: str | None = None,
          issuer: str | None = None, sigstore_verifier: Any = None,
          offline: bool = False) -> Checked:
    """Every file's digest against the manifest, no file unlisted, and each signature there:
    the key's DSSE envelope and, for ``identity`` and ``issuer``, the Sigstore bundle."""
    folder = Path(folder)
    try:
        text = (folder / MANIFEST).read_bytes()
        doc = json.loads(text)
        listed = doc["files"]
        assert isinstance(listed, dict)
    except (OSError, ValueError, KeyError, AssertionError):
        return Checked(False, f"{MANIFEST}: missing or not an aicp manifest")
    present = set(_files_in(folder))
    for name, digest in listed.items():
        path = folder / name
        if name not in present:
            return Checked(False, f"{name}: listed in the manifest but missing")
        if path.is_symlink() or sha256(path.read_bytes()) != digest:
            return Checked(False, f"{name}: its SHA-256 does not match the manifest")
    extra = [n for n in present if n not in listed and n not in SIGNED and n not in UNSIGNED]
    if extra:
        return Checked(False, f"{extra[0]}: not in the manifest")
    keyed, keyless = (folder / ENVELOPE).is_file(), (folder / SIGSTORE_BUNDLE).is_file()
    if not keyed and not keyless:
        return Checked(False, f"{ENVELOPE}: missing: the bundle is not signed "
                       f"({len(listed)} digests match)")
    found = _check_envelope(folder, text, key, len(listed)) if keyed else None
    if found is not None and not found.ok:
        return found
    if not keyless:
        return found or Checked(False, "unreachable")
    from . import keyless as sigstore

    if found is not None and not (identity and issuer):  # the key's signature stands alone
        return Checked(True, f"{found.message}; the Sigstore bundle {SIGSTORE_BUNDLE} was "
                       "not checked (pass --cert-identity and --cert-oidc-issuer)")
    signed = sigstore.check((folder / SIGSTORE_BUNDLE).read_bytes(), text, identity, issuer,
                            sigstore_verifier, offline)
    if not signed.ok:
        return signed
    head = found.message if found else f"{len(listed)} files match the manifest"
    return Checked(True, f"{head}; {signed.message}")


def _check_envelope(folder: Path, manifest_bytes: bytes, key: Path | None,
                    count: int) -> Checked:
    from cryptography.hazmat.primitives import serialization

    try:
        env = json.loads((folder / ENVELOPE).read_bytes())
        payload = base64.b64decode(env["payload"], validate=True)
        statement = json.loads(payload)
        signatures = env["signatures"]
    except (OSError, ValueError, KeyError, TypeError):
        return Checked(False, f"{ENVELOPE}: not a DSSE envelope")
    if env.get("payloadType") != PAYLOAD_TYPE or statement.get("_type") != STATEMENT_TYPE:
        return Checked(False, f"{ENVELOPE}: not an in-toto Statement v1 envelope")
    subject = {s.get("name"): (s.get("digest") or {}).get("sha256")
               for s in statement.get("subject") or []}
    if subject.get(MANIFEST) != sha256(manifest_bytes):
        return Checked(False, f"{MANIFEST}: does not match the signed statement's subject")
    source = Path(key) if key else folder / PUBLIC_KEY
    try:
        public = serialization.load_pem_public_key(source.expanduser().read_bytes())
    except (OSError, ValueError):
        return Checked(False, f"{source}: not a readable PEM public key")
    wanted = keyid(public)
    data = pae(env["payloadType"], payload)
    for sig in signatures:
        try:
            raw = base64.b64decode(sig.get("sig", ""), validate=True)
        except ValueError:
            continue
        if _verify(public, raw, data):
            trust = (f"key {wanted[:16]}" if key else
                     f"the key shipped in the bundle ({wanted[:16]}; pass --key to check "
                     "who signed)")
            return Checked(True, f"{count} files match the manifest; signature by {trust} "
                           "verified")
    return Checked(False, f"{ENVELOPE}: no signature verifies with key {wanted[:16]}")
