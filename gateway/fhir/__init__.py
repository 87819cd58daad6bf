"""FHIR R4 output: resources built with fhir.resources' R4B models, served under /fhir."""
