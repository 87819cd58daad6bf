"""Run the accounts mock standalone: ``python -m mocks.accounts [--host H] [--port P]``."""

from __future__ import annotations

import argparse

import uvicorn

from mocks.accounts.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The citizen platform's account service (mock).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", server_header=False)


if __name__ == "__main__":
    main()
