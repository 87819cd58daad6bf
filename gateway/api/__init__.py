"""The HTTP API (FastAPI): FHIR, the journal's HL7 endpoint, the message browser, health."""
