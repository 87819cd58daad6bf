"""The journal side: HL7 v2 over MLLP and HTTP, parsed, checked, acknowledged."""
