"""Run the mailbox mock standalone: ``python -m mocks.mailbox [--host H] [--port P]
[--trust-cert sender.pem]``. With ``--trust-cert`` a delivery's signature must verify against that
certificate; without, against the certificate in the signature's own KeyInfo."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from mocks.mailbox.app import RECIPIENT_PATH, create_app
from mocks.runner import ServedApp


def main() -> None:
    parser = argparse.ArgumentParser(description="Digital mailboxes, Mina meddelanden style (mock).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--trust-cert", type=Path, help="the sender's certificate (PEM) to verify against")
    args = parser.parse_args()
    trusted = args.trust_cert.read_bytes() if args.trust_cert else None
    served = ServedApp(create_app(trusted_certificate=trusted), host=args.host, port=args.port).start()
    print(
        f"Mailbox mock: recipient service {served.url}{RECIPIENT_PATH} "
        f"(WSDL: {served.url}{RECIPIENT_PATH}?wsdl); Ctrl-C stops it"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()


if __name__ == "__main__":
    main()
