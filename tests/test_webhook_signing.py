import hashlib
import hmac

import pytest

from resources.webhook_signing import (
    InvalidSignature,
    sign_fanvue,
    verify_fanvue,
    verify_telegram,
)

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"subscriber.cancelled"}'
NOW = 1_800_000_000


def test_sign_matches_the_documented_scheme() -> None:
    header = sign_fanvue(SECRET, BODY, NOW)
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={mac}"


def test_valid_signature_passes_within_tolerance() -> None:
    header = sign_fanvue(SECRET, BODY, NOW)
    verify_fanvue(SECRET, header, BODY, now=NOW)
    verify_fanvue(SECRET, header, BODY, now=NOW + 300)
    verify_fanvue(SECRET, header, BODY, now=NOW - 300)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify_fanvue(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize(
    "header",
    ["garbage", "t=abc,v1=00", "v1=00", f"t={NOW}", f"t={NOW},t={NOW},v1=00", "t=-5,v1=00"],
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(InvalidSignature, match="malformed"):
        verify_fanvue(SECRET, header, BODY, now=NOW)


def test_wrong_secret_tampered_body_and_wrong_timestamp_fail() -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_fanvue(SECRET, sign_fanvue("other", BODY, NOW), BODY, now=NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_fanvue(SECRET, sign_fanvue(SECRET, BODY, NOW), BODY + b" ", now=NOW)
    # The timestamp is part of the MAC: moving it forward to pass the replay check fails.
    forged = sign_fanvue(SECRET, BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1000}")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_fanvue(SECRET, forged, BODY, now=NOW + 1000)


def test_stale_or_future_timestamp_is_a_replay() -> None:
    header = sign_fanvue(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="replay"):
        verify_fanvue(SECRET, header, BODY, now=NOW + 301)
    with pytest.raises(InvalidSignature, match="replay"):
        verify_fanvue(SECRET, header, BODY, now=NOW - 301)
    verify_fanvue(SECRET, header, BODY, now=NOW + 1000, tolerance=1000)


def test_several_v1_values_for_secret_rotation() -> None:
    old_mac = sign_fanvue("old-secret", BODY, NOW).split("v1=")[1]
    new_mac = sign_fanvue(SECRET, BODY, NOW).split("v1=")[1]
    header = f"t={NOW},v1={old_mac},v1={new_mac},v0=ignored"
    verify_fanvue(SECRET, header, BODY, now=NOW)
    verify_fanvue("old-secret", header, BODY, now=NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_fanvue("third", header, BODY, now=NOW)


def test_uppercase_hex_and_spaces_accepted() -> None:
    mac = sign_fanvue(SECRET, BODY, NOW).split("v1=")[1]
    verify_fanvue(SECRET, f"t={NOW}, v1={mac.upper()}", BODY, now=NOW)


def test_errors_never_contain_the_secret_or_expected_mac() -> None:
    expected = sign_fanvue(SECRET, BODY, NOW).split("v1=")[1]
    with pytest.raises(InvalidSignature) as info:
        verify_fanvue(SECRET, f"t={NOW},v1=00", BODY, now=NOW)
    assert SECRET not in str(info.value) and expected not in str(info.value)


def test_empty_secret_rejects_everything() -> None:
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_fanvue("", sign_fanvue("", BODY, NOW), BODY, now=NOW)
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_telegram("", "")


def test_telegram_secret() -> None:
    verify_telegram("tg-secret", "tg-secret")
    with pytest.raises(InvalidSignature, match="missing"):
        verify_telegram("tg-secret", None)
    with pytest.raises(InvalidSignature, match="missing"):
        verify_telegram("tg-secret", "")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_telegram("tg-secret", "tg-secreT")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_telegram("tg-secret", "tg-secret-longer")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_telegram("tg-secret", "ünïcode")
