"""The sandbox's own Fanvue webhook signer, checked against the published scheme
(docs/subscriber-channels.md: `X-Fanvue-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256(secret, "<t>." + raw body)>`) and against the production verifier. The sandbox
must not share the client's signer, or a bug there would hide behind the fake."""

from __future__ import annotations

import ast
import hashlib
import hmac
from pathlib import Path

import pytest

from resources.webhook_signing import FANVUE_SIGNATURE_HEADER, InvalidSignature, verify_fanvue
from sandbox.systems.fanvue import SIGNATURE_HEADER, sign_webhook

SECRET = "whsec_test"
TIMESTAMP = 1_700_000_000
BODY = b'{"id":"evt_1","type":"tip.received"}'
# Computed outside Python, by hand:
#   printf '%s' '1700000000.{"id":"evt_1","type":"tip.received"}' \
#     | openssl dgst -sha256 -hmac 'whsec_test'
EXPECTED = "t=1700000000,v1=e23968f515a47c8c7f9524d1832fedbcb420fc0f4492550cae1684db42ac04b4"


def test_known_answer() -> None:
    assert sign_webhook(SECRET, BODY, TIMESTAMP) == EXPECTED


def test_known_answer_step_by_step() -> None:
    message = b"1700000000" + b"." + BODY
    mac = hmac.new(b"whsec_test", message, hashlib.sha256).hexdigest()
    assert f"t=1700000000,v1={mac}" == EXPECTED
    assert sign_webhook(SECRET, BODY, TIMESTAMP) == f"t=1700000000,v1={mac}"


def test_header_name_is_the_published_one() -> None:
    assert SIGNATURE_HEADER == "X-Fanvue-Signature"
    assert SIGNATURE_HEADER == FANVUE_SIGNATURE_HEADER


def test_signature_depends_on_secret_body_and_time() -> None:
    assert sign_webhook("other", BODY, TIMESTAMP) != EXPECTED
    assert sign_webhook(SECRET, BODY + b" ", TIMESTAMP) != EXPECTED
    assert sign_webhook(SECRET, BODY, TIMESTAMP + 1) != EXPECTED


@pytest.mark.parametrize("body", [BODY, b"", "{\"text\": \"h\u00e9llo \U0001f60a\"}".encode()])
def test_production_verifier_accepts_what_the_sandbox_signs(body: bytes) -> None:
    header = sign_webhook(SECRET, body, TIMESTAMP)
    verify_fanvue(SECRET, header, body, now=TIMESTAMP + 10)
    with pytest.raises(InvalidSignature):
        verify_fanvue("not-the-secret", header, body, now=TIMESTAMP + 10)
    with pytest.raises(InvalidSignature):
        verify_fanvue(SECRET, header, body + b"x", now=TIMESTAMP + 10)


def test_sandbox_systems_do_not_import_client_code() -> None:
    systems = Path(__file__).resolve().parents[2] / "sandbox" / "systems"
    for name in ("fanvue", "tiktok", "runpod"):
        tree = ast.parse((systems / f"{name}.py").read_text())
        modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names]
        modules += [node.module or "" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)]
        for module in modules:
            assert not module.startswith("resources"), (name, module)
            if module.startswith("waifugen_assets"):
                assert module.startswith("waifugen_assets.core"), (name, module)
