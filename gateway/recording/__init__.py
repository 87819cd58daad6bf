"""Record and replay: capture real traffic, replay it against any gateway, see what changed.

The whole design, the file format and the ignore list are in ``docs/recording.md``.

    GATEWAY_RECORD=true gateway serve               # every outside call kept with its answer
    gateway record export -o day.jsonl --since 2026-12-01T00:00Z
    gateway replay day.jsonl                        # a fresh gateway here, the built-in mocks
    gateway replay day.jsonl --offline              # outside calls answered from the recording
    gateway replay day.jsonl --target mllp://test-gw:2575 --http http://test-gw:8000 --junit r.xml

Modules: ``context`` (which messages a call is made for), ``transport`` (the recording and the
offline httpx transports), ``matching`` (how a request is found in a recording), ``store``
(the table, export, import, pruning), ``fileformat`` (JSON Lines, versioned), ``diff`` (ACKs and
FHIR resources, the ignore list), ``replay`` (send, settle, compare, JUnit), ``cli``.
"""
