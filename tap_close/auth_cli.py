"""`tap-close-auth`: get a first refresh token with Close's OAuth authorization-code flow.

Close accepts only https redirect URLs, so there is no loopback listener: open the printed
URL, approve, then paste the URL you were redirected to (or just its `code`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from tap_close.auth import (
    AUTHORIZE_URL,
    DEFAULT_TOKEN_URL,
    AuthError,
    TokenStore,
    default_token_store_path,
    exchange,
    fingerprint,
)


def authorize_url(client_id: str, redirect_uri: str, state: str, base: str = AUTHORIZE_URL) -> str:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": state,
    }
    return f"{base}?{urlencode(query)}"


def extract_code(pasted: str, state: str | None = None) -> str:
    """Accept a bare code or the whole redirected URL; reject errors and state mismatches."""
    text = pasted.strip()
    if "://" not in text and "?" not in text and "=" not in text:
        if not text:
            raise AuthError("No code was given.")
        return text
    query = parse_qs(urlparse(text).query or text.lstrip("?"))
    if "error" in query:
        raise AuthError(f"Close returned an error instead of a code: {query['error'][0]}")
    if state and query.get("state", [state])[0] != state:
        raise AuthError("The pasted URL belongs to another authorization attempt (state differs).")
    if not query.get("code"):
        raise AuthError("The pasted URL has no `code` parameter.")
    return query["code"][0]


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="tap-close-auth", description=__doc__)
    p.add_argument("--client-id", default=env("TAP_CLOSE_CLIENT_ID"))
    p.add_argument("--client-secret", default=env("TAP_CLOSE_CLIENT_SECRET"),
                   help="default: $TAP_CLOSE_CLIENT_SECRET, else asked without echo")
    p.add_argument("--redirect-uri", required=True, help="the https redirect URL of your app")
    p.add_argument("--code", help="the code or redirected URL (otherwise asked interactively)")
    p.add_argument("--token-store-path", default=env("TAP_CLOSE_TOKEN_STORE_PATH"))
    p.add_argument("--token-url", default=env("TAP_CLOSE_OAUTH_TOKEN_URL") or DEFAULT_TOKEN_URL)
    p.add_argument("--authorize-url", default=AUTHORIZE_URL)
    p.add_argument("--scopes", default=env("TAP_CLOSE_OAUTH_SCOPES"))
    p.add_argument("--output", help="write the tap config (mode 0600) here instead of stdout")
    return p


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.client_id:
        raise AuthError("client_id is required (--client-id or TAP_CLOSE_CLIENT_ID).")
    if urlparse(args.redirect_uri).scheme != "https":
        raise AuthError("redirect_uri must be an https URL (Close rejects http).")
    secret = args.client_secret or getpass.getpass("Client secret: ")
    if not secret:
        raise AuthError("client_secret is required.")
    state = secrets.token_urlsafe(12)
    pasted = args.code
    if pasted is None:
        print("Open this URL, choose the organization and approve:\n", file=sys.stderr)
        print(authorize_url(args.client_id, args.redirect_uri, state, args.authorize_url),
              file=sys.stderr)
        pasted = input("\nPaste the URL you were redirected to (or the code): ")
        code = extract_code(pasted, state)
    else:
        code = extract_code(pasted)
    data = {
        "client_id": args.client_id,
        "client_secret": secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": args.redirect_uri,
    }
    if args.scopes:
        data["scope"] = args.scopes
    with requests.Session() as session:
        body = exchange(session, args.token_url, data)
    refresh = body.get("refresh_token")
    if not refresh:
        raise AuthError("Close returned no refresh_token: the app needs the offline_access scope.")
    store_path = Path(args.token_store_path or default_token_store_path(args.client_id))
    expires_in = float(body.get("expires_in") or 3600)
    TokenStore(store_path).save({
        "client_id": args.client_id,
        "seed": fingerprint(refresh),
        "refresh_token": refresh,
        "access_token": body["access_token"],
        "expires_at": time.time() + expires_in - min(60.0, expires_in / 5),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    config = {"client_id": args.client_id, "client_secret": "<your client secret>",
              "refresh_token": refresh, "token_store_path": str(store_path)}
    text = json.dumps(config, indent=2)
    if args.output:
        out = Path(args.output)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text.replace("<your client secret>", secret) + "\n")
        print(f"Config written to {out}; token store: {store_path}", file=sys.stderr)
    else:
        print(f"Token store seeded: {store_path}\nTap config (add your client secret):",
              file=sys.stderr)
        print(text)
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        sys.exit(run(argv))
    except AuthError as exc:
        print(f"tap-close-auth: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
