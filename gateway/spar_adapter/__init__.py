"""Population register (SPAR PersonSök over SOAP). Not built yet: see issue 3."""
