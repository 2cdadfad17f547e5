"""Sigstore keyless signing of the evidence manifest (``--sign-keyless``) and its check.

Where the user's environment holds an ambient OIDC identity (CI: GitHub Actions with
``id-token: write``, GitLab, Buildkite, CircleCI, a GCP service account; or a token in
``$SIGSTORE_IDENTITY_TOKEN``, as sigstore-python's own CLI reads it), the same in-toto
Statement the key signature covers (``sign.statement``) is signed with Sigstore: a
short-lived Fulcio certificate for that identity, the signature logged in Rekor, all in one
Sigstore bundle (``results/aicp-manifest.sigstore.json``). Checking it needs the identity
and the OIDC issuer the reviewer expects (``--cert-identity``, ``--cert-oidc-issuer``, the
names sigstore-python's ``verify identity`` uses): a bundle proves who signed only against
an expectation.

The ``sigstore`` package (sigstore-python 4.x: ``sigstore.oidc.detect_credential``,
``sigstore.sign.SigningContext``, ``sigstore.verify.Verifier.verify_dsse``) is an optional
extra (``pip install 'aicp[sigstore]'``), imported only when keyless signing or checking is
asked for. Signing needs the network (Sigstore's TUF root, Fulcio, Rekor); checking
refreshes the trusted root from Sigstore's TUF repository unless ``offline``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .sign import MANIFEST, PAYLOAD_TYPE, SIGSTORE_BUNDLE, STATEMENT_TYPE, Checked, sha256

BUNDLE = SIGSTORE_BUNDLE
EXTRA = "pip install 'aicp[sigstore]'"
TOKEN_ENV = "SIGSTORE_IDENTITY_TOKEN"  # sigstore-python's CLI reads the same variable


class KeylessError(ValueError):
    """Keyless signing is not possible here: one line saying why and what to do."""


def _library(flag: str) -> None:
    try:
        import sigstore  # noqa: F401
    except ImportError:
        raise KeylessError(f"{flag} needs the sigstore package, an optional extra of aicp: "
                           f"{EXTRA}") from None


def identity_token() -> Any:
    """The ambient OIDC identity token (``sigstore.oidc.IdentityToken``); raises
    ``KeylessError`` when the library or a token is missing."""
    _library("--sign-keyless")
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    raw = os.environ.get(TOKEN_ENV)
    try:
        raw = raw or detect_credential()
    except IdentityError as exc:
        raise KeylessError(f"--sign-keyless: the ambient OIDC credential could not be read "
                           f"({exc}); sign with --sign-key instead") from None
    if not raw:
        raise KeylessError("--sign-keyless: no ambient OIDC identity token here (CI offers "
                           "one, e.g. GitHub Actions with `permissions: id-token: write`; or "
                           f"set ${TOKEN_ENV}); sign with --sign-key instead")
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise KeylessError(f"--sign-keyless: the OIDC identity token is not usable ({exc})"
                           ) from None


def sign(statement: bytes, token: Any) -> str:
    """A Sigstore bundle (JSON) of ``statement`` signed as ``token``'s identity; raises
    ``KeylessError`` naming what failed (the network, Fulcio, Rekor)."""
    _library("--sign-keyless")
    from sigstore.dsse import Statement
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext

    try:
        context = SigningContext.from_trust_config(ClientTrustConfig.production())
        with context.signer(token) as signer:
            bundle = signer.sign_dsse(Statement(statement))
    except Exception as exc:  # noqa: BLE001 - any failure: one line, the run goes on
        raise KeylessError(f"Sigstore signing failed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return bundle.to_json()


def check(bundle_text: bytes, manifest_bytes: bytes, identity: str | None,
          issuer: str | None, verifier: Any = None, offline: bool = False) -> Checked:
    """Verify the Sigstore bundle over the manifest's statement for ``identity`` and
    ``issuer``. Never says verified unless sigstore's ``Verifier.verify_dsse`` accepted the
    bundle for that identity and the statement's subject is this manifest.

    ``verifier``: a ``sigstore.verify.Verifier`` (default: Sigstore's production trusted
    root, refreshed unless ``offline``)."""
    if not identity or not issuer:
        return Checked(False, f"{BUNDLE}: a Sigstore bundle, NOT verified: pass "
                       "--cert-identity and --cert-oidc-issuer (who you expect signed it)")
    try:
        _library("checking a Sigstore bundle")
    except KeylessError as exc:
        return Checked(False, f"{BUNDLE}: NOT verified: {exc}")
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    try:
        bundle = Bundle.from_json(bundle_text)
    except Exception as exc:  # noqa: BLE001 - a file that is not a bundle
        return Checked(False, f"{BUNDLE}: not a Sigstore bundle ({type(exc).__name__})")
    try:
        verifier = verifier or Verifier.production(offline=offline)
        kind, payload = verifier.verify_dsse(bundle, Identity(identity=identity,
                                                              issuer=issuer))
    except SigstoreError as exc:
        return Checked(False, f"{BUNDLE}: NOT verified for {identity} ({issuer}): "
                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    except Exception as exc:  # noqa: BLE001 - e.g. no network for the trusted root
        return Checked(False, f"{BUNDLE}: NOT verified: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}")
    try:
        statement = json.loads(payload)
        subjects = {s.get("name"): (s.get("digest") or {}).get("sha256")
                    for s in statement.get("subject") or []}
    except (ValueError, AttributeError):
        return Checked(False, f"{BUNDLE}: its signed payload is not an in-toto statement")
    if kind != PAYLOAD_TYPE or statement.get("_type") != STATEMENT_TYPE:
        return Checked(False, f"{BUNDLE}: signs a {kind}, not an in-toto Statement v1")
    if subjects.get(MANIFEST) != sha256(manifest_bytes):
        return Checked(False, f"{MANIFEST}: does not match the Sigstore-signed statement's "
                       "subject")
    return Checked(True, f"Sigstore signature by {identity} ({issuer}) verified")
