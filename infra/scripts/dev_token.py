"""Mint a development bearer token: `python infra/scripts/dev_token.py SUBJECT ROLE [--exp SECONDS]`
(what `make token SUB=alice ROLE=customer` runs). It prints the token alone, so that
`TOKEN=$(make -s token SUB=alice ROLE=customer)` works.

The minting itself is `ecommerce_ops.dev_tokens.mint_token` (the operator CLI's package, installed in
the environment), re-exported here for the scripts and tests that import it from this directory.

(Not named token.py: a script's directory comes first on sys.path, and the standard library has a
`token` module that tokenize, and so tracebacks, import.)
"""

import argparse

from ecommerce_ops.dev_tokens import SIGNING_KEY, TTL_S, mint_token
from shared.auth import Role

__all__ = ["SIGNING_KEY", "mint_token"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a development bearer token.")
    parser.add_argument("subject", help="who: a customer id (alice), or an operator's name")
    parser.add_argument("role", choices=[role.value for role in Role])
    parser.add_argument("--exp", type=int, default=TTL_S, help=f"seconds until it expires (default {TTL_S})")
    args = parser.parse_args()
    if not args.subject.strip():
        parser.error("the subject must not be blank")
    print(mint_token(args.subject, args.role, ttl_s=args.exp))


if __name__ == "__main__":
    main()
