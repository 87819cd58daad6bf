"""Integration gateway for Swedish digital healthcare communication.

Journal systems push HL7 v2 bookings and letters; the gateway stores them durably, applies the
regional rules (``../shared/DOMAIN.md``) and serves FHIR R4 resources to the citizen platform.
"""

__version__ = "0.1.0"
