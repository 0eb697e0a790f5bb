import hashlib
import json
from pathlib import Path

import pytest

from shared.signature import SignatureCheck, check_signature, compute_signature

FIXTURES = Path(__file__).parent / "fixtures"
CASE_SECRET = "plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f"
BODY_A = (FIXTURES / "cases" / "body-a.json").read_bytes()
BODY_A_SIGNATURE = "f507d65257a8441e9ca335e0f30239b784f439969a4904007498795ab11de2e9"


def signature_vectors():
    vectors = json.loads(
        (FIXTURES / "plane" / "webhook-signature-vectors.json").read_text()
    )
    return [pytest.param(v, id=v["fixture"]) for v in vectors]


@pytest.mark.parametrize("vector", signature_vectors())
def test_signature_vectors_match(vector):
    body = vector["raw_body"].encode("utf-8")
    expected = vector["headers"]["X-Plane-Signature"]

    assert compute_signature(body, secret=vector["secret"]) == expected
    assert (
        check_signature(body, expected, secrets=(vector["secret"],))
        is SignatureCheck.VALID
    )


def test_non_ascii_vector_has_escaped_bytes():
    vectors = json.loads(
        (FIXTURES / "plane" / "webhook-signature-vectors.json").read_text()
    )
    non_ascii = [v for v in vectors if "non-ASCII" in v["fixture"]][0]
    body = non_ascii["raw_body"].encode("utf-8")

    assert body.isascii()
    assert (
        check_signature(
            body,
            non_ascii["headers"]["X-Plane-Signature"],
            secrets=(non_ascii["secret"],),
        )
        is SignatureCheck.VALID
    )


def test_raw_utf8_body_verifies_over_its_own_bytes():
    body_b = (FIXTURES / "cases" / "body-b.json").read_bytes()
    signature = "56f09da995698b6fadaae9dfcd246f0abbfbbdbd96a0c1368ab1866637d1f544"

    assert (
        check_signature(body_b, signature, secrets=(CASE_SECRET,))
        is SignatureCheck.VALID
    )


def test_reserialized_signature_does_not_match_other_bytes():
    body_b = (FIXTURES / "cases" / "body-b.json").read_bytes()

    assert json.dumps(json.loads(body_b)).encode() == BODY_A
    assert (
        check_signature(body_b, BODY_A_SIGNATURE, secrets=(CASE_SECRET,))
        is SignatureCheck.MISMATCH
    )


def test_changed_byte_fails():
    tampered = BODY_A.replace(b"alex", b"alec")

    assert (
        check_signature(tampered, BODY_A_SIGNATURE, secrets=(CASE_SECRET,))
        is SignatureCheck.MISMATCH
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, SignatureCheck.MISSING),
        ("", SignatureCheck.MISSING),
        ("zz", SignatureCheck.MALFORMED),
        (BODY_A_SIGNATURE[:-1], SignatureCheck.MALFORMED),
        (BODY_A_SIGNATURE.upper(), SignatureCheck.MALFORMED),
        ("sha256=" + BODY_A_SIGNATURE, SignatureCheck.MALFORMED),
        (BODY_A_SIGNATURE[:-1] + "8", SignatureCheck.MISMATCH),
    ],
)
def test_bad_headers_are_rejected(header, expected):
    assert check_signature(BODY_A, header, secrets=(CASE_SECRET,)) is expected


def test_any_rotation_secret_verifies():
    secrets = ("plane_wh_new_secret_value", CASE_SECRET)

    assert (
        check_signature(BODY_A, BODY_A_SIGNATURE, secrets=secrets)
        is SignatureCheck.VALID
    )


def test_empty_key_signature_never_verifies():
    empty_key_signature = (
        "a63e10ce3d297977617d76cdb09af515f4d24ac0cf0413d4d06455b7cefbbc4a"
    )

    assert (
        check_signature(BODY_A, empty_key_signature, secrets=(CASE_SECRET,))
        is SignatureCheck.MISMATCH
    )
    with pytest.raises(ValueError):
        compute_signature(BODY_A, secret="")


def test_empty_body_signature_matches_case_value():
    assert (
        compute_signature(b"", secret=CASE_SECRET)
        == "5305a9fb9b4f89726427adb2e51ed5f08e34e53e85d8d707d2c41b4888f64dd7"
    )


def test_no_secrets_is_an_error():
    with pytest.raises(ValueError):
        check_signature(BODY_A, BODY_A_SIGNATURE, secrets=())


def test_case_bodies_are_byte_exact():
    digest = hashlib.sha256(BODY_A).hexdigest()

    assert digest == "bfe2e50b17fbf539c67a76081df07b171969ccd2caa47a51293926826c100840"
