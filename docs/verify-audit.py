#!/usr/bin/env python3
"""Independent verifier for `breakglass audit export` (JSONL).

Written from README.md ("Audit and alerts": the canonical form and the
checkpoints) only, without breakglass code, so an auditor can read and trust
it on its own. Recomputes the hash chain, checks signed checkpoints against a
public key, and names the first broken link.

    breakglass audit export > audit.jsonl
    python3 verify-audit.py audit.jsonl
    python3 verify-audit.py audit.jsonl --checkpoints alerts.jsonl --public-key HEX
    breakglass audit export | python3 verify-audit.py -

Exit 0: everything holds. 1: something is broken (named on stdout).
2: bad usage or unreadable input. Needs Python 3.8+; checkpoints also need the
`cryptography` package (pip install cryptography) for Ed25519.
"""

import argparse
import hashlib
import json
import sys

GENESIS = "0" * 64
CHECKPOINT_DOMAIN = "breakglass-checkpoint/v1"
HASHED_KEYS = ("action", "actor", "at", "detail", "from", "request_id", "seq", "to")
EXPORT_KEYS = set(HASHED_KEYS) | {"hash", "prev_hash"}


class Broken(Exception):
    """The first thing that does not hold: where, what, and the two values."""

    def __init__(self, where, what, expected=None, found=None):
        super().__init__(what)
        self.where, self.what, self.expected, self.found = where, what, expected, found


class BadInput(Exception):
    pass


def shown(v, limit=200):
    # Values come from the file: escape everything non-ASCII or control so
    # nothing in it can act on the terminal.
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=True)
    s = json.dumps(s, ensure_ascii=True)[1:-1]
    return s if len(s) <= limit else s[:limit] + "..."


def strict_object(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key %s" % json.dumps(k))
        obj[k] = v
    return obj


def no_float(text):
    raise ValueError("non-integer number %s (the canonical form has integers only)" % text)


def no_constant(text):
    raise ValueError("%s is not JSON" % text)


def parse(text):
    return json.loads(
        text,
        object_pairs_hook=strict_object,
        parse_float=no_float,
        parse_constant=no_constant,
    )


def canonical(value):
    """Keys sorted by code point, no whitespace, UTF-8, only the escapes JSON requires."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_shape(e, where):
    if not isinstance(e, dict):
        raise Broken(where, "the line is not a JSON object")
    missing = sorted(set(EXPORT_KEYS) - set(e))
    extra = sorted(set(e) - set(EXPORT_KEYS))
    if missing:
        raise Broken(where, "missing key(s) " + ", ".join(missing))
    if extra:
        # Not hashed, so nothing vouches for them.
        raise Broken(where, "key(s) outside the hashed form: " + ", ".join(shown(k) for k in extra))
    types = {
        "seq": is_int,
        "at": lambda v: isinstance(v, str),
        "actor": lambda v: isinstance(v, str),
        "action": lambda v: isinstance(v, str),
        "request_id": lambda v: v is None or is_int(v),
        "from": lambda v: v is None or isinstance(v, str),
        "to": lambda v: v is None or isinstance(v, str),
        "prev_hash": lambda v: isinstance(v, str),
        "hash": lambda v: isinstance(v, str),
    }
    for k, ok in types.items():
        if not ok(e[k]):
            raise Broken(where, "%s has the wrong type" % k, found=e[k])


def verify_chain(lines):
    """Returns the list of hashes (index i = event seq i+1); raises Broken."""
    hashes = []
    prev = GENESIS
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        expected_seq = len(hashes) + 1
        where = "seq %d (line %d)" % (expected_seq, n)
        try:
            e = parse(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise Broken(where, "the line is not valid JSON: %s" % err)
        check_shape(e, where)
        if e["seq"] != expected_seq:
            raise Broken(
                where,
                "wrong event here: an event was deleted, inserted or moved",
                "seq %d" % expected_seq,
                "seq %d" % e["seq"],
            )
        if e["prev_hash"] != prev:
            raise Broken(
                where,
                "prev_hash does not link to the event before it: the chain was cut or rewritten",
                prev,
                e["prev_hash"],
            )
        event = {k: e[k] for k in HASHED_KEYS}
        try:
            data = prev.encode("ascii") + canonical(event)
        except (UnicodeEncodeError, ValueError) as err:
            raise Broken(where, "the event cannot be put in canonical form: %s" % err)
        h = hashlib.sha256(data).hexdigest()
        if h != e["hash"]:
            raise Broken(
                where,
                "hash does not match the event's content: it was altered after it was written"
                " (expected: recomputed from the line; found: its hash)",
                h,
                e["hash"],
            )
        hashes.append(h)
        prev = h
    return hashes


def load_checkpoints(path):
    """A bare checkpoint, an alert carrying one, a JSON list of either, or JSONL of them."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput("%s: %s" % (path, err))
    try:
        docs = [parse(text)]
        if isinstance(docs[0], list):
            docs = docs[0]
        where = ["%s" % path] * len(docs)
    except ValueError:
        docs, where = [], []
        # Only "\n" ends a line: str.splitlines() would also split inside strings
        # at U+2028, U+0085 and the like, which JSON leaves unescaped.
        for n, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    docs.append(parse(line))
                except ValueError as err:
                    raise BadInput("%s line %d: not JSON: %s" % (path, n, err))
                where.append("%s line %d" % (path, n))
    out = []
    for d, w in zip(docs, where):
        if isinstance(d, dict) and "checkpoint" in d:
            d = d["checkpoint"]
        elif isinstance(d, dict) and "schema" in d:
            continue  # an alert sent before a checkpoint key was configured
        if not isinstance(d, dict):
            raise BadInput("%s: not a checkpoint" % w)
        out.append((w, d))
    if not out:
        raise BadInput("%s: holds no checkpoint" % path)
    return out


def verify_checkpoint(where, cp, public, key_id, hashes, Ed25519PublicKey, InvalidSignature):
    fields = {"tree_size": is_int, "head": None, "at": None, "key_id": None, "signature": None}
    for k, ok in fields.items():
        v = cp.get(k)
        if not (ok(v) if ok else isinstance(v, str)):
            raise Broken("checkpoint " + where, "%s is missing or has the wrong type" % k)
    label = "checkpoint of %s, tree_size %d (%s)" % (shown(cp["at"]), cp["tree_size"], where)
    if cp["key_id"] != key_id:
        raise Broken(label, "signed by another key than the one given", key_id, cp["key_id"])
    try:
        sig = bytes.fromhex(cp["signature"])
    except ValueError:
        sig = b""
    if len(sig) != 64:
        raise Broken(label, "the signature is not 64 bytes of hex", found=cp["signature"])
    message = "%s\n%d\n%s\n%s\n" % (CHECKPOINT_DOMAIN, cp["tree_size"], cp["head"], cp["at"])
    try:
        public.verify(sig, message.encode("utf-8"))
    except InvalidSignature:
        raise Broken(label, "the signature does not verify with the public key: forged or altered")
    size = cp["tree_size"]
    if size < 0:
        raise Broken(label, "tree_size is negative")
    if size > len(hashes):
        raise Broken(
            label,
            "the export ends before the signed event: its tail was cut off",
            "at least %d events" % size,
            "%d events" % len(hashes),
        )
    have = hashes[size - 1] if size else GENESIS
    if have != cp["head"]:
        raise Broken(
            label,
            "event #%d is not the one that was signed: the log was rewritten" % size,
            cp["head"],
            have,
        )


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Verify a `breakglass audit export` (JSONL) and signed checkpoints."
    )
    p.add_argument("export", nargs="?", default="-", help="export file, or - for stdin (default)")
    p.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        metavar="FILE",
        help="checkpoints to check: `audit checkpoint` output, an alert, or an alerts JSONL file (repeatable)",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="HEX", help="the checkpoint key's public key (from `audit keygen`)")
    key.add_argument("--public-key-file", metavar="FILE", help="a file holding that hex public key")
    a = p.parse_args(argv)

    try:
        if a.export == "-":
            lines = sys.stdin.buffer.read().split(b"\n")
        else:
            with open(a.export, "rb") as f:
                lines = f.read().split(b"\n")
        public_hex = a.public_key
        if a.public_key_file:
            with open(a.public_key_file, encoding="ascii") as f:
                public_hex = f.read()
        checkpoints = [c for path in a.checkpoints for c in load_checkpoints(path)]
        if checkpoints and public_hex is None:
            raise BadInput("checkpoints need --public-key or --public-key-file")
        if public_hex is not None:
            try:
                public_bytes = bytes.fromhex(public_hex.strip())
            except ValueError:
                public_bytes = b""
            if len(public_bytes) != 32:
                raise BadInput("the public key must be 64 hex characters")
    except (OSError, UnicodeDecodeError, BadInput) as err:
        print("verify-audit: %s" % err, file=sys.stderr)
        return 2

    crypto = None
    if checkpoints:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            print(
                "verify-audit: checking checkpoint signatures needs the `cryptography` package: "
                "pip install cryptography (or apt-get install python3-cryptography)",
                file=sys.stderr,
            )
            return 2
        crypto = (Ed25519PublicKey, InvalidSignature)

    try:
        hashes = verify_chain(lines)
        key_id = None
        if crypto:
            public = crypto[0].from_public_bytes(public_bytes)
            key_id = hashlib.sha256(public_bytes).hexdigest()[:16]
            for where, cp in checkpoints:
                verify_checkpoint(where, cp, public, key_id, hashes, *crypto)
    except Broken as b:
        print("BROKEN at %s: %s" % (b.where, b.what))
        if b.expected is not None:
            print("  expected: %s" % shown(b.expected))
        if b.found is not None:
            print("  found:    %s" % shown(b.found))
        return 1

    head = hashes[-1] if hashes else GENESIS
    print("OK: %d events link from genesis to head %s" % (len(hashes), head))
    if checkpoints:
        best = max(cp["tree_size"] for _, cp in checkpoints)
        print(
            "OK: %d checkpoint(s) signed by key %s verify; the export extends the largest (%d events)"
            % (len(checkpoints), key_id, best)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
