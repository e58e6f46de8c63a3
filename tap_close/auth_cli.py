"""`tap-close-auth`: get a first refresh token with Close's OAuth authorization-code flow.

Close accepts only https redirect URLs, so there is no loopback listener: open the printed
URL, approve, then paste the URL you were redirected to (or just its `code`). A pasted URL
must carry the `state` of the printed one. The client secret comes from
$TAP_CLOSE_CLIENT_SECRET or a prompt (`--client-secret` would show in `ps`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from tap_close.auth import (
    AUTHORIZE_URL,
    DEFAULT_TOKEN_URL,
    AuthError,
    exchange,
    handle_stop_signals,
    signals_deferred,
    token_record,
)
from tap_close.stores import open_store
from tap_close.stores.file import drop_temp
from tap_close.urls import url_problem

try:
    import termios

    NO_INPUT: tuple[type[Exception], ...] = (EOFError, termios.error)
except ImportError:  # no termios (Windows)
    NO_INPUT = (EOFError,)


class InputMissing(Exception):
    """A prompt got no answer (no terminal, Ctrl-D, closed input)."""


def ask(prompt: str, *, secret: bool = False, hint: str) -> str:
    """One line from the user, the prompt on stderr (stdout carries the config); a secret
    without echo on a terminal. No answer (no terminal, Ctrl-D): InputMissing naming `hint`."""
    try:
        if secret and sys.stdin.isatty():
            return getpass.getpass(prompt)
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
    except NO_INPUT:
        line = ""
    if not line:
        print(file=sys.stderr)  # end the prompt's line
        raise InputMissing(f"no answer to {prompt.strip()!r} (no terminal, or input ended): "
                           f"{hint}")
    return line.rstrip("\r\n")


def authorize_url(client_id: str, redirect_uri: str, state: str, base: str = AUTHORIZE_URL) -> str:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": state,
    }
    return f"{base}?{urlencode(query)}"


def extract_code(pasted: str, state: str | None) -> str:
    """Accept a bare code or the whole redirected URL; reject errors, and a URL whose `state`
    is missing or differs (`state` None: no URL was printed, so a URL cannot be checked)."""
    text = pasted.strip()
    if "://" not in text and "?" not in text and "=" not in text:
        if not text:
            raise AuthError("No code was given.")
        return text
    query = parse_qs(urlparse(text).query or text.lstrip("?"))
    if "error" in query:
        raise AuthError(f"Close returned an error instead of a code: {query['error'][0]}")
    if state is None:
        raise AuthError("A redirected URL needs --state (the state of the authorize URL); "
                        "or give only the code.")
    if "state" not in query:
        raise AuthError("The pasted URL has no `state`: paste the whole redirected URL.")
    if not secrets.compare_digest(query["state"][0], state):
        raise AuthError("The pasted URL belongs to another authorization attempt (state differs).")
    if not query.get("code"):
        raise AuthError("The pasted URL has no `code` parameter.")
    return query["code"][0]


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="tap-close-auth", description=__doc__)
    p.add_argument("--client-id", default=env("TAP_CLOSE_CLIENT_ID"),
                   help="the client ID of your Close OAuth app (default: $TAP_CLOSE_CLIENT_ID)")
    p.add_argument("--client-secret", default=env("TAP_CLOSE_CLIENT_SECRET"),
                   help="avoid: visible in `ps`; default: $TAP_CLOSE_CLIENT_SECRET, else asked "
                   "without echo")
    p.add_argument("--redirect-uri", required=True, help="the https redirect URL of your app")
    p.add_argument("--code", help="the code or redirected URL (otherwise asked interactively)")
    p.add_argument("--state", help="with --code URL: the state of the authorize URL it answers")
    p.add_argument("--token-store", default=env("TAP_CLOSE_TOKEN_STORE"),
                   help="store URL to seed: file:///..., postgresql://..., s3://...")
    p.add_argument("--token-store-path", default=env("TAP_CLOSE_TOKEN_STORE_PATH"),
                   help="a file store as a plain path (instead of --token-store)")
    p.add_argument("--token-url", default=env("TAP_CLOSE_OAUTH_TOKEN_URL") or DEFAULT_TOKEN_URL,
                   help="Close's token endpoint (default: $TAP_CLOSE_OAUTH_TOKEN_URL, else "
                   f"{DEFAULT_TOKEN_URL})")
    p.add_argument("--authorize-url", default=AUTHORIZE_URL,
                   help="Close's authorize page (default: %(default)s)")
    p.add_argument("--scopes", default=env("TAP_CLOSE_OAUTH_SCOPES"),
                   help="space-separated scopes to ask for (default: $TAP_CLOSE_OAUTH_SCOPES, "
                   "else the app's)")
    p.add_argument("--output", help="write the tap config (mode 0600) here instead of stdout")
    return p


def _glue_values(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--code -x1` -> `--code=-x1`: codes, secrets and states may start with "-"."""
    takes_value = {s for a in parser._actions if a.nargs is None and a.option_strings
                   for s in a.option_strings if s.startswith("--")}
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        value = next(it, None) if arg in takes_value else None
        out.append(arg if value is None else f"{arg}={value}")
    return out


def run(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_glue_values(sys.argv[1:] if argv is None else argv, parser))
    if not args.client_id:
        raise AuthError("client_id is required (--client-id or TAP_CLOSE_CLIENT_ID).")
    if urlparse(args.redirect_uri).scheme != "https":
        raise AuthError("redirect_uri must be an https URL (Close rejects http).")
    if args.token_store and args.token_store_path:
        raise AuthError("Give --token-store or --token-store-path, not both.")
    problem = url_problem(args.token_url, "--token-url (TAP_CLOSE_OAUTH_TOKEN_URL)")
    if problem:  # the client secret and the code go there
        raise AuthError(problem + ".")
    output = PrivateFile(Path(args.output)) if args.output else None
    try:
        return _authorize(args, output)
    finally:
        if output is not None:
            output.discard()


def _authorize(args: argparse.Namespace, output: PrivateFile | None) -> int:
    secret = args.client_secret or ask(
        "Client secret: ", secret=True, hint="set TAP_CLOSE_CLIENT_SECRET")
    if not secret:
        raise AuthError("client_secret is required.")
    location = {"url": args.token_store, "path": args.token_store_path}
    # The store must take the token before the one-time code is spent.
    open_store(client_id=args.client_id, refresh_token="", **location).check()
    state = args.state or secrets.token_urlsafe(12)
    pasted = args.code
    if pasted is None:
        print("Open this URL, choose the organization and approve:\n", file=sys.stderr)
        print(authorize_url(args.client_id, args.redirect_uri, state, args.authorize_url),
              file=sys.stderr)
        pasted = ask("\nPaste the URL you were redirected to (or the code): ",
                     hint="give it with --code (and --state)")
    code = extract_code(pasted, state if args.code is None or args.state else None)
    data = {
        "client_id": args.client_id,
        "client_secret": secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": args.redirect_uri,
    }
    if args.scopes:
        data["scope"] = args.scopes
    handle_stop_signals()  # a stop waits until the new chain is in the store
    with signals_deferred(), requests.Session() as session:
        body = exchange(session, args.token_url, data)
        refresh = body.get("refresh_token")
        if not refresh:
            raise AuthError("Close returned no refresh_token: the app needs the "
                            "offline_access scope.")
        store = open_store(client_id=args.client_id, refresh_token=refresh, **location)
        with store.hold():  # the lock every tap takes for a refresh
            store.load()  # other chains in the store are kept
            store.prepare()
            store.save_durably(token_record(args.client_id, store.seed, body, refresh))
    config = {"client_id": args.client_id, "client_secret": "<your client secret>",
              "refresh_token": refresh}
    if args.token_store or args.token_store_path:
        key = "token_store" if args.token_store else "token_store_path"
        config[key] = args.token_store or args.token_store_path
    text = json.dumps(config, indent=2)
    if output is not None:
        output.write(text.replace("<your client secret>", secret) + "\n")
        print(f"Config written to {args.output}; token store seeded: {store}", file=sys.stderr)
    else:
        print(f"Token store seeded: {store}\nTap config (add your client secret):",
              file=sys.stderr)
        print(text)
    return 0


class PrivateFile:
    """A file readable by the owner only, written as a new 0600 file renamed over `path`
    (an existing file is replaced, not written into: a reader that opened it before keeps
    the old content; a symlink is replaced, not followed). Created at once, so that a path
    that cannot be written fails before the one-time code is spent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        except OSError as exc:
            raise AuthError(f"--output {path}: cannot be written ({exc.strerror})") from None
        self._temp: tuple[int, str] | None = (fd, name)

    def write(self, text: str) -> None:
        assert self._temp is not None
        fd, name = self._temp
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
            os.fsync(fd)
            os.close(fd)
            self._temp = (-1, name)
            os.replace(name, self.path)
            self._temp = None
        except OSError as exc:
            raise AuthError(f"--output {self.path}: cannot be written ({exc.strerror})") from None

    def discard(self) -> None:
        """Remove the temp file unless it was renamed into place."""
        if self._temp is not None:
            temp, self._temp = self._temp, None
            drop_temp(*temp)


def main(argv: list[str] | None = None) -> None:
    try:
        sys.exit(run(argv))
    except AuthError as exc:
        print(f"tap-close-auth: {exc}", file=sys.stderr)
        sys.exit(1)
    except InputMissing as exc:
        print(f"tap-close-auth: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
