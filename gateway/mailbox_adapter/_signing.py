"""XML-DSig for deliveries: the sender's key and certificate, and the signing of a delivery
the client built with lxml (``_translate.deliver_secure``), just before it is sent.

Two signatures, as Mina meddelanden v3 wants them: first ``SignedDelivery`` (the letter), then the
whole ``SealedDelivery`` (the letter, its signature and the ``Seal``), both by the sender (the
gateway delivers directly, so it seals its own delivery). Each is enveloped (``URI=""``) over its
element taken as a document of its own, exclusive canonicalization, RSA-SHA256 (ECDSA-SHA256 for
an EC key) and SHA-256 digests, so it still verifies once the element sits inside the SOAP
envelope (the namespaces around it are not part of what is signed). The certificate travels in
``KeyInfo/X509Data``.

The signature is written here directly on the lxml tree (one canonicalization of the element for
the digest, one of ``SignedInfo`` for the signature value) rather than through signxml's signer,
which serialises and re-parses the element several times per signature: at outbox speed that was
most of the client's CPU. What it writes is exactly what signxml wrote (the same algorithms and
element order); the tests verify it with signxml's verifier, as the mock does.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.errors import ConfigurationError
from gateway.mailbox_adapter._settings import MailboxSettings

NS_MESSAGE = "http://minameddelanden.gov.se/schema/Message/v3"
SIGNED_DELIVERY = f"{{{NS_MESSAGE}}}SignedDelivery"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED_SIGNATURE = f"{NS_DS}enveloped-signature"
EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
SHA256 = DigestAlgorithm.SHA256.value

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """The sender's private key and certificate. ``throwaway``: made at start-up, trusted by nobody."""

    key: SigningKey
    certificate: x509.Certificate
    throwaway: bool = False

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, hex (what the mock records)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()


def load_identity(settings: MailboxSettings) -> SigningIdentity:
    """The certificate and key from settings, or a throwaway self-signed one when none is set."""
    if settings.sign_cert is None:
        return throwaway_identity(settings.sender_name)
    password = settings.sign_key_password.get_secret_value().encode() if settings.sign_key_password else None
    try:
        cert_pem = settings.sign_cert.read_bytes()
        key_pem = settings.sign_key.read_bytes() if settings.sign_key else cert_pem
        certificate = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"mailbox signing certificate or key cannot be used: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError("mailbox signing key must be RSA or EC")
    if _public_bytes(key.public_key()) != _public_bytes(certificate.public_key()):
        raise ConfigurationError("mailbox signing key does not belong to the certificate")
    return SigningIdentity(key, certificate)


def _public_bytes(public_key: Any) -> bytes:
    data: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


@functools.cache
def throwaway_identity(common_name: str) -> SigningIdentity:
    """A self-signed RSA certificate made in memory, once per process (the demo's and tests' sender)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} (throwaway test sender)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "integration gateway demo"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningIdentity(key, certificate, throwaway=True)


def _ds(tag: str) -> str:
    return f"{{{NS_DS}}}{tag}"


def _c14n(element: etree._Element) -> bytes:
    """Exclusive XML canonicalization 1.0 without comments of ``element`` as an apex."""
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))


def _signature_value(identity: SigningIdentity, data: bytes) -> bytes:
    key = identity.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # XML-DSig wants r || s, each as wide as the curve's order (RFC 4050), not DER.
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        width = (key.curve.key_size + 7) // 8
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


@functools.lru_cache(maxsize=8)
def _certificate_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def append_signature(element: etree._Element, identity: SigningIdentity) -> etree._Element:
    """Sign ``element`` in place: its enveloped ``ds:Signature`` appended as the last child
    (exclusive c14n, SHA-256 digest, RSA-SHA256 or ECDSA-SHA256). Returns the signature."""
    method = (
        SignatureMethod.ECDSA_SHA256
        if isinstance(identity.key, ec.EllipticCurvePrivateKey)
        else SignatureMethod.RSA_SHA256
    )
    # The enveloped-signature transform removes the signature again: digest the element as it is now.
    digest = base64.b64encode(hashlib.sha256(_c14n(element)).digest()).decode("ascii")
    signature = etree.SubElement(element, _ds("Signature"), nsmap={"ds": NS_DS})
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXCLUSIVE_C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=method.value)
    reference = etree.SubElement(signed_info, _ds("Reference"), URI="")
    transforms = etree.SubElement(reference, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED_SIGNATURE)
    etree.SubElement(transforms, _ds("Transform"), Algorithm=EXCLUSIVE_C14N)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(reference, _ds("DigestValue")).text = digest
    value = _signature_value(identity, _c14n(signed_info))
    etree.SubElement(signature, _ds("SignatureValue")).text = base64.b64encode(value).decode("ascii")
    x509_data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509Certificate")).text = _certificate_b64(identity.certificate)
    return signature


def sign_delivery(signed_delivery: etree._Element, identity: SigningIdentity) -> etree._Element:
    """``SignedDelivery`` (or ``SealedDelivery``) with its enveloped ``ds:Signature`` appended as
    the last child (a new element; the input is kept)."""
    signed = copy.deepcopy(signed_delivery)
    append_signature(signed, identity)
    return signed


def sign_sealed_delivery(sealed: etree._Element, identity: SigningIdentity) -> None:
    """Both signatures of a ``SealedDelivery`` (in place): first its ``SignedDelivery``, then the
    whole ``SealedDelivery`` (its signature after ``Seal``)."""
    signed_delivery = sealed.find(SIGNED_DELIVERY)
    if signed_delivery is None:
        raise ValueError("a SealedDelivery without SignedDelivery")
    append_signature(signed_delivery, identity)
    append_signature(sealed, identity)
