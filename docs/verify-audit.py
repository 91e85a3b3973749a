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
    python3 verify-audit.py --evidence DIR --public-key HEX

`--evidence DIR` checks a bundle from `breakglass evidence REQ-n --output DIR`
(README: "Evidence for an auditor"): every file against manifest.json, the run
of events as a chain from its first prev_hash, the checkpoint over its last
event, each decision's SSH signature (with `ssh-keygen -Y verify`, over the
statement rebuilt from the events) and each recording's audited SHA-256.

Exit 0: everything holds. 1: something is broken (named on stdout).
2: bad usage or unreadable input. Needs Python 3.8+; checkpoints also need the
`cryptography` package (pip install cryptography) for Ed25519.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import stat
import sys
import unicodedata

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
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=True, default=repr)
    s = json.dumps(s, ensure_ascii=True)[1:-1]
    return s if len(s) <= limit else s[:limit] + "..."


def strict_object(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key %s" % json.dumps(k))
        obj[k] = v
    return obj


class Fraction:
    """A number with a fraction or exponent (`session.replayed`'s speed, 0.0),
    kept as the text that was hashed: re-formatting it could change the bytes."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Fraction) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return self.text


def no_constant(text):
    raise ValueError("%s is not JSON" % text)


def parse(text):
    return json.loads(
        text,
        object_pairs_hook=strict_object,
        parse_float=Fraction,
        parse_constant=no_constant,
    )


def canonical(value):
    """Keys sorted by code point, no whitespace, UTF-8, only the escapes JSON requires."""
    return canonical_text(value).encode("utf-8")


def canonical_text(v):
    # json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    # except that a Fraction is written as the text it was read from.
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_text(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(canonical_text(x) for x in v) + "]"
    if isinstance(v, Fraction):
        return v.text
    return json.dumps(v, ensure_ascii=False, allow_nan=False)


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


def verify_chain(lines, events=None):
    """Returns the list of hashes (index i = event seq i+1); raises Broken.

    With `events` (a list), the lines are a run of the chain that may start
    anywhere: it starts at the first line's seq and prev_hash, and the parsed
    events are appended to `events`."""
    hashes = []
    prev = GENESIS
    first_seq = 1
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if events is not None and not hashes:
            where = "line %d" % n  # a run's first seq is not known before it is read
        else:
            where = "seq %d (line %d)" % (first_seq + len(hashes), n)
        try:
            e = parse(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise Broken(where, "the line is not valid JSON: %s" % err)
        check_shape(e, where)
        if events is not None and canonical(e) != raw:
            # A bundle holds the export form exactly: no other spelling of it.
            raise Broken(where, "the line is not in the export's canonical form (spacing, escapes or key order)")
        if events is not None and not hashes:
            first_seq, prev = e["seq"], e["prev_hash"]
        expected_seq = first_seq + len(hashes)
        where = "seq %d (line %d)" % (expected_seq, n)
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
        if events is not None:
            events.append(e)
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
    label = checkpoint_signature(where, cp, public, key_id, InvalidSignature)
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


def checkpoint_signature(where, cp, public, key_id, InvalidSignature):
    """Checks a checkpoint's fields, key id and Ed25519 signature; returns its label."""
    if not isinstance(cp, dict):
        raise Broken("checkpoint " + where, "not a JSON object")
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
    return label


# --- Evidence bundles (`breakglass evidence`) --------------------------------

EVIDENCE_FORMAT = "breakglass-evidence/v1"
FIXED_FILES = ("events.jsonl", "checkpoint.json", "checkpoint-key.pub", "allowed_signers", "summary.txt")
PER_EVENT = re.compile(r"\A(signatures/seq-[1-9][0-9]{0,18}\.(statement|sig)|recordings/seq-[1-9][0-9]{0,18}\.cast)\Z")
DECISIONS = {
    "request.approved": "approve",
    "request.denied": "deny",
    "review.certified": "certify",
    "review.rejected": "reject",
}
MANIFEST_KEYS = {
    "format", "generator", "request", "written_at", "first_seq", "last_seq",
    "no_checkpoint", "recordings_missing", "files",
}


def bundle_files(root):
    """Regular files of the bundle as names ("a/b"); anything else is refused."""
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and name in ("signatures", "recordings"):
            for sub in sorted(os.listdir(path)):
                rel = name + "/" + sub
                if not (stat.S_ISREG(os.lstat(os.path.join(path, sub)).st_mode) and PER_EVENT.match(rel)):
                    raise Broken(rel, "unexpected entry in the bundle (only the files its manifest lists belong there)")
                out.append(rel)
        elif stat.S_ISREG(st.st_mode) and (name == "manifest.json" or name in FIXED_FILES):
            out.append(name)
        else:
            raise Broken(name, "unexpected entry in the bundle (a symlink, device or unknown name)")
    return out


def read_bytes(root, name):
    with open(os.path.join(root, name), "rb") as f:
        return f.read()


def statement_field(s):
    # As the README says: "\" doubled, every control character (Unicode Cc)
    # as \u{<lowercase hex>}, so no value can add a line.
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif unicodedata.category(c) == "Cc":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def statement_time(signed_at, where):
    m = re.match(r"\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)\Z", signed_at or "")
    if not m:
        raise Broken(where, "the signature's signed_at is not an RFC 3339 UTC time", found=signed_at)
    return m.group(1) + "Z"


def incident_label(inc, where):
    if isinstance(inc, dict) and inc.get("kind") == "source":
        return "%s (%s): %s" % (inc.get("id"), inc.get("source"), inc.get("title"))
    if isinstance(inc, dict) and inc.get("kind") == "ticket":
        return "ticket %s" % inc.get("reference")
    raise Broken(where, "the request.created event has no incident to rebuild statements from")


def decision_statement(created, e, sig, where):
    d = created["detail"]
    decision = DECISIONS[e["action"]]
    lines = [
        "breakglass-approval/v1",
        "request=REQ-%d" % e["request_id"],
        "role=" + statement_field(str(d.get("role"))),
        "incident=" + statement_field(incident_label(d.get("incident"), where)),
        "decision=" + decision,
    ]
    if decision == "deny" and isinstance(e["detail"].get("reason"), str):
        lines.append("reason=" + statement_field(e["detail"]["reason"]))
    lines.append("signer=" + statement_field(e["actor"]))
    lines.append("at=" + statement_time(sig.get("signed_at"), where))
    return "\n".join(lines) + "\n"


def ssh_verify(root, signer, sig_name, statement, signed_at, where):
    t = statement_time(signed_at, where)
    verify_time = t[0:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:19] + "Z"
    try:
        r = subprocess.run(
            [
                "ssh-keygen", "-Y", "verify", "-n", "breakglass",
                "-f", os.path.join(root, "allowed_signers"),
                "-I", signer,
                "-s", os.path.join(root, sig_name),
                "-O", "verify-time=" + verify_time,
            ],
            input=statement.encode("utf-8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        raise BadInput("checking SSH signatures needs ssh-keygen (OpenSSH 8.9+): apt-get install openssh-client (%s)" % err)
    if r.returncode != 0:
        said = (r.stderr or r.stdout).decode("utf-8", "replace").strip().splitlines()
        raise Broken(where, "the signature does not verify against allowed_signers: %s" % (said[-1] if said else "ssh-keygen failed"))


def verify_evidence(root, public_hex, crypto):
    """Checks a bundle; returns lines to print; raises Broken or BadInput."""
    files = bundle_files(root)
    if "manifest.json" not in files:
        raise Broken("manifest.json", "missing: this is not an evidence bundle")
    try:
        m = parse(read_bytes(root, "manifest.json").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise Broken("manifest.json", "not valid JSON: %s" % err)
    if not isinstance(m, dict) or set(m) != MANIFEST_KEYS or m["format"] != EVIDENCE_FORMAT:
        raise Broken("manifest.json", "not a %s manifest" % EVIDENCE_FORMAT)
    rid = m["request"]
    if not is_int(rid) or not isinstance(m["files"], dict) or not isinstance(m["recordings_missing"], dict):
        raise Broken("manifest.json", "request, files or recordings_missing has the wrong type")

    # The events, as a run of the chain.
    events = []
    try:
        hashes = verify_chain(read_bytes(root, "events.jsonl").split(b"\n"), events)
    except Broken as b:
        b.where = "events.jsonl " + b.where
        raise
    if not events:
        raise Broken("events.jsonl", "holds no events")
    first, last = events[0], events[-1]
    if first["action"] != "request.created" or first["request_id"] != rid:
        raise Broken("events.jsonl line 1", "the run does not start with REQ-%d's request.created event" % rid)
    if (first["seq"], last["seq"]) != (m["first_seq"], m["last_seq"]):
        raise Broken("events.jsonl", "the events run from a different seq than the manifest says",
                     "#%s to #%s" % (m["first_seq"], m["last_seq"]), "#%d to #%d" % (first["seq"], last["seq"]))
    mine = [e for e in events if e["request_id"] == rid]
    report = ["OK: events #%d to #%d (%d) link as a chain from the first event's prev_hash; %d of them are REQ-%d's, starting with its request.created"
              % (first["seq"], last["seq"], len(events), len(mine), rid)]

    # The checkpoint: over the last event.
    if m["no_checkpoint"] is None:
        if "checkpoint.json" not in files or "checkpoint-key.pub" not in files:
            raise Broken("checkpoint.json", "missing, and the manifest gives no reason for a bundle without one")
        bundled = read_bytes(root, "checkpoint-key.pub").decode("ascii", "replace").strip().lower()
        if public_hex is not None and public_hex.strip().lower() != bundled:
            raise Broken("checkpoint-key.pub", "not the public key you gave: the checkpoint was signed with another key")
        try:
            pub = bytes.fromhex(bundled)
            public = crypto[0].from_public_bytes(pub)
        except ValueError:
            raise Broken("checkpoint-key.pub", "not a 32-byte hex Ed25519 public key")
        try:
            cp = parse(read_bytes(root, "checkpoint.json").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise Broken("checkpoint.json", "not valid JSON: %s" % err)
        label = checkpoint_signature("checkpoint.json", cp, public, hashlib.sha256(pub).hexdigest()[:16], crypto[1])
        if cp["tree_size"] != last["seq"] or cp["head"] != hashes[-1]:
            raise Broken(label, "the checkpoint does not sign the last event of events.jsonl",
                         "#%d with head %s" % (last["seq"], hashes[-1]), "#%d with head %s" % (cp["tree_size"], cp["head"]))
        report.append("OK: checkpoint.json, signed %s by key %s, covers the log's first %d events, these included%s"
                      % (shown(cp["at"]), cp["key_id"], cp["tree_size"],
                         "" if public_hex is not None else " (checked against the bundle's own key: pass --public-key to pin yours)"))
    else:
        if "checkpoint.json" in files:
            raise Broken("checkpoint.json", "present, yet the manifest says there is no checkpoint")
        if public_hex is not None:
            raise Broken("checkpoint.json", "the bundle has no signed checkpoint, but you gave a key to check one against")
        report.append("WARNING: NOT COVERED BY A SIGNED CHECKPOINT (%s): this proves internal consistency only" % shown(m["no_checkpoint"]))

    # Signatures and recordings, against the events that carry their hashes.
    expected = set()
    nsig = nrec = 0
    for e in mine:
        where = "event #%d (%s by %s)" % (e["seq"], shown(e["action"]), shown(e["actor"]))
        d = e["detail"] if isinstance(e["detail"], dict) else {}
        sig = d.get("signature")
        if sig is not None:
            if e["action"] not in DECISIONS or not isinstance(sig, dict) or not isinstance(sig.get("armored"), str):
                raise Broken(where, "carries a malformed signature or is no decision")
            st, sf = "signatures/seq-%d.statement" % e["seq"], "signatures/seq-%d.sig" % e["seq"]
            for f in (st, sf, "allowed_signers"):
                if f not in files:
                    raise Broken(where, "is signed, but %s is missing from the bundle" % f)
            statement = decision_statement(first, e, sig, where)
            if read_bytes(root, st) != statement.encode("utf-8"):
                raise Broken(st, "not the statement %s signed (rebuilt from the events)" % where)
            if read_bytes(root, sf).decode("utf-8", "replace").strip() != sig["armored"].strip():
                raise Broken(sf, "not the signature recorded in %s" % where)
            ssh_verify(root, e["actor"], sf, statement, sig.get("signed_at"), where)
            expected.update((st, sf))
            nsig += 1
        if e["action"] == "session.recorded":
            name = "recordings/seq-%d.cast" % e["seq"]
            if name in files:
                got = hashlib.sha256(read_bytes(root, name)).hexdigest()
                if got != d.get("sha256"):
                    raise Broken(name, "not the recording audited in %s" % where, d.get("sha256"), got)
                expected.add(name)
                nrec += 1
            elif str(e["seq"]) in m["recordings_missing"]:
                report.append("WARNING: the recording of event #%d is not in the bundle: %s"
                              % (e["seq"], shown(m["recordings_missing"][str(e["seq"])])))
            else:
                raise Broken(name, "missing: the recording audited in %s" % where)
    recorded = {str(e["seq"]) for e in mine if e["action"] == "session.recorded"}
    for seq in m["recordings_missing"]:
        if seq not in recorded:
            raise Broken("manifest.json", "lists a missing recording for event #%s, which is no session.recorded event of REQ-%d" % (shown(seq), rid))
    for f in files:
        if PER_EVENT.match(f) and f not in expected:
            raise Broken(f, "belongs to no signed decision or recorded session of REQ-%d" % rid)
    report.append("OK: %d signature(s) verify with ssh-keygen over the statements rebuilt from the events" % nsig)
    report.append("OK: %d recording(s) match the SHA-256 audited for them" % nrec)

    # Every file against the manifest, and nothing outside it.
    for f in files:
        if f == "manifest.json":
            continue
        entry = m["files"].get(f)
        if not isinstance(entry, dict):
            raise Broken(f, "not in the manifest")
        data = read_bytes(root, f)
        got = hashlib.sha256(data).hexdigest()
        if got != entry.get("sha256") or len(data) != entry.get("bytes"):
            raise Broken(f, "does not match its SHA-256 in the manifest: changed after the bundle was written", entry.get("sha256"), got)
    for f in m["files"]:
        if f not in files:
            raise Broken(shown(f), "listed in the manifest but missing from the bundle")
    report.insert(0, "OK: %d files match manifest.json" % (len(files) - 1))
    return report


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
    p.add_argument(
        "--evidence",
        metavar="DIR",
        help="verify an evidence bundle (`breakglass evidence REQ-n --output DIR`) instead of an export",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="HEX", help="the checkpoint key's public key (from `audit keygen`)")
    key.add_argument("--public-key-file", metavar="FILE", help="a file holding that hex public key")
    a = p.parse_args(argv)

    if a.evidence is not None:
        return main_evidence(a)
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


def main_evidence(a):
    try:
        public_hex = a.public_key
        if a.public_key_file:
            with open(a.public_key_file, encoding="ascii") as f:
                public_hex = f.read()
        if a.checkpoints:
            raise BadInput("--checkpoints is for exports; a bundle carries its own checkpoint")
        if not os.path.isdir(a.evidence):
            raise BadInput("%s is not a directory" % a.evidence)
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            raise BadInput(
                "checking the checkpoint needs the `cryptography` package: "
                "pip install cryptography (or apt-get install python3-cryptography)"
            )
        report = verify_evidence(a.evidence, public_hex, (Ed25519PublicKey, InvalidSignature))
    except (OSError, UnicodeDecodeError, BadInput) as err:
        print("verify-audit: %s" % err, file=sys.stderr)
        return 2
    except Broken as b:
        print("BROKEN at %s: %s" % (b.where, b.what))
        if b.expected is not None:
            print("  expected: %s" % shown(b.expected))
        if b.found is not None:
            print("  found:    %s" % shown(b.found))
        return 1
    for line in report:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
