"""XML-DSig for deliveries (signxml): the sender's key and certificate, and the zeep plugin that
signs each delivery in the envelope zeep built, just before it is sent.

Two signatures, as Mina meddelanden v3 wants them: first ``SignedDelivery`` (the letter), then the
whole ``SealedDelivery`` (the letter, its signature and the ``Seal``), both by the sender (the
gateway delivers directly, so it seals its own delivery). Each is enveloped (``URI=""``) over its
element taken as a document of its own, exclusive canonicalization, RSA-SHA256 (ECDSA-SHA256 for
an EC key) and SHA-256 digests, so it still verifies once the element sits inside the SOAP
envelope (the namespaces around it are not part of what is signed). The certificate travels in
``KeyInfo/X509Data``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner
from zeep import Plugin

from gateway.errors import ConfigurationError
from gateway.mailbox_adapter._settings import MailboxSettings

NS_MESSAGE = "http://minameddelanden.gov.se/schema/Message/v3"
SIGNED_DELIVERY = f"{{{NS_MESSAGE}}}SignedDelivery"

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


def sign_delivery(signed_delivery: etree._Element, identity: SigningIdentity) -> etree._Element:
    """``SignedDelivery`` (or ``SealedDelivery``) with its enveloped ``ds:Signature`` appended as
    the last child (a new element; the input is kept)."""
    method = (
        SignatureMethod.ECDSA_SHA256
        if isinstance(identity.key, ec.EllipticCurvePrivateKey)
        else SignatureMethod.RSA_SHA256
    )
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    return signer.sign(copy.deepcopy(signed_delivery), key=identity.key, cert=[identity.certificate])


class DeliverySigner(Plugin):
    """zeep egress plugin: signs every ``SignedDelivery`` in the outgoing envelope, then the
    ``SealedDelivery`` around it (its signature comes after ``Seal``)."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str], operation: Any, binding_options: Any
    ) -> tuple[etree._Element, dict[str, str]]:
        for node in list(envelope.iter(SIGNED_DELIVERY)):
            sealed = node.getparent()
            assert sealed is not None  # inside deliverSecure/deliverSecure
            sealed.replace(node, sign_delivery(node, self.identity))
            outer = sealed.getparent()
            assert outer is not None
            outer.replace(sealed, sign_delivery(sealed, self.identity))
        return envelope, http_headers
