"""Run the SPAR mock standalone: ``python -m mocks.spar [--host H] [--port P] [--tls-cert C --tls-key K
[--client-ca CA]]``. With ``--client-ca`` it demands a client certificate signed by that CA."""

from __future__ import annotations

import argparse
import threading

from mocks.runner import ServedApp, TlsFiles
from mocks.spar.app import PATH, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="SPAR PersonSök over SOAP 1.1 (mock).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tls-cert", help="server certificate (PEM); serves HTTPS")
    parser.add_argument("--tls-key", help="server private key (PEM)")
    parser.add_argument("--client-ca", help="demand a client certificate signed by this CA (PEM)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together; --client-ca needs them")
    tls = TlsFiles(args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
    served = ServedApp(create_app(), host=args.host, port=args.port, tls=tls).start()
    print(f"SPAR PersonSök mock: {served.url}{PATH} (WSDL: {served.url}{PATH}?wsdl); Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()


if __name__ == "__main__":
    main()
