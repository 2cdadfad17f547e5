"""``aicp verify evidence check DIR``: every file's digest against the signed manifest.

The bundle is written by the real writers with a key made here; each test changes one
thing a reviewer could meet (an edited file, an added one, another signer) and reads the
one line the check prints and its exit code.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.verify import cli
from aicp.verify.evidence import sign
from aicp.verify.reports import write
from aicp.verify.result import Verdict
from tests.verify.conftest import submission, template
from tests.verify.test_reports import report_for
from tests.verify.test_submission import ed25519_key


def check(*args: str):
    return CliRunner().invoke(app, ["verify", "evidence", "check", *args])


@pytest.fixture
def bundle(tmp_path):
    private, public = ed25519_key(tmp_path)
    tmpl = template("1.37")
    write(report_for(tmpl, [Verdict.PASS] * len(tmpl.ids)), tmpl, ["json", "checklist"],
          tmp_path / "out", signer=sign.load_signer(private),
          cluster={"kubeSystemUid": "u-1", "kubernetesVersion": "v1.37.0"})
    return submission(tmp_path / "out"), public


def test_a_signed_bundle_verifies_with_the_signers_key(bundle):
    folder, public = bundle
    result = check(str(folder), "--key", str(public))
    assert result.exit_code == 0, result.output
    listed = json.loads((folder / sign.MANIFEST).read_text())["files"]
    assert f"evidence ok: {len(listed)} files match the manifest; signature by key " in \
        result.output
    # Without --key the bundled public key is used, and the line says what that proves.
    result = check(str(folder))
    assert result.exit_code == 0 and "pass --key to check who signed" in result.output


@pytest.mark.parametrize(("change", "named"), [
    (lambda f: (f / "PRODUCT.yaml").write_text((f / "PRODUCT.yaml").read_text()
                                               .replace("Implemented", "N/A", 1)),
     "PRODUCT.yaml: its SHA-256 does not match the manifest"),
    (lambda f: (f / "evidence" / "extra.txt").write_text("added later"),
     "evidence/extra.txt: not in the manifest"),
    (lambda f: (f / "results" / "aicp-results.json").unlink(),
     "results/aicp-results.json: listed in the manifest but missing"),
    (lambda f: (f / sign.MANIFEST).write_text((f / sign.MANIFEST).read_text()
                                              .replace('"u-1"', '"u-2"')),
     "results/aicp-manifest.json: does not match the signed statement's subject"),
], ids=["edited", "added", "removed", "manifest-edited"])
def test_a_changed_bundle_fails_naming_the_first_bad_file(bundle, change, named):
    folder, public = bundle
    change(folder)
    result = check(str(folder), "--key", str(public))
    assert result.exit_code == 1
    assert result.output.strip() == f"evidence NOT ok: {named}"


def test_another_signers_key_or_no_signature_fails(bundle, tmp_path):
    folder, _ = bundle
    (tmp_path / "other").mkdir()
    _, other = ed25519_key(tmp_path / "other")
    result = check(str(folder), "--key", str(other))
    assert result.exit_code == 1
    assert result.output.startswith("evidence NOT ok: results/aicp-manifest.dsse.json: no "
                                    "signature verifies with key ")
    (folder / sign.ENVELOPE).unlink()
    result = check(str(folder), "--key", str(other))
    assert result.exit_code == 1 and "results/aicp-manifest.dsse.json: missing: the bundle " \
                                     "is not signed" in result.output


def test_an_ecdsa_key_signs_too_and_a_bad_key_file_is_exit_2(tmp_path, kubeapi_factory,
                                                             capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "ec.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    tmpl = template("1.36")
    write(report_for(tmpl), tmpl, ["json"], tmp_path / "out", signer=sign.load_signer(pem))
    assert check(str(tmp_path / "out")).exit_code == 0
    (tmp_path / "not-a-key.pem").write_text("hello")
    with pytest.raises(sign.SignKeyError, match="is not a PEM private key"):
        sign.load_signer(tmp_path / "not-a-key.pem")
    from aicp.verify import session

    kube = kubeapi_factory("empty", minor="1.37")
    code = session.run(session.Options(kubeconfig=kube.write_kubeconfig(tmp_path / "kc.yaml"),
                                       output=["json"], output_dir=tmp_path / "x",
                                       sign_key=tmp_path / "not-a-key.pem"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --sign-key ") and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_each_evidence_check_example_runs(bundle, tmp_path, monkeypatch):
    folder, public = bundle
    monkeypatch.chdir(tmp_path)  # holds out/v1.37/aicp and key.pub.pem
    assert public == tmp_path / "key.pub.pem"
    assert folder == tmp_path / "out" / "v1.37" / "aicp"
    Path("aicp-verify-results").symlink_to(tmp_path / "out")  # the --output-dir itself
    Path("v1.37").symlink_to(tmp_path / "out" / "v1.37")
    lines = cli.evidence_check.__doc__.split("Examples:", 1)[1].splitlines()
    examples = [shlex.split(line.strip())[1:] for line in lines if "aicp " in line]
    assert len(examples) == 2
    for args in examples:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
