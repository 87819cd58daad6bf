"""The citizen platform's account service (1177 / Alltid öppet) as an HTTP/JSON mock.

Contract: ``docs/accounts.md``. Answers from the one test population (``mocks/persons.yaml``,
or ``GATEWAY_MOCK_PERSONS``); lock state and failure switches live in memory and can be
flipped at run time.
"""

from mocks.accounts.app import Switches, create_app

__all__ = ["Switches", "create_app"]
