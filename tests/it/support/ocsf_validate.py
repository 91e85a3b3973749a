"""Validates OCSF events (JSON Lines files) against the JSON Schema that the
`ocsf-json-schema` package generates from the OCSF schema it bundles: for each
event, the schema of its `class_uid` in its `metadata.version`, with the
profiles its `metadata.profiles` declares, checked with `jsonschema`
(Draft 2020-12, formats checked).

Prints one JSON line per event: file, line, class, profiles, ok, errors.
Exits 0 when every event was read; validity is for the caller to judge.
"""

import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

schemas = {}
validators = {}


def validator(version, class_uid, profiles):
    key = (version, class_uid, tuple(sorted(profiles)))
    if key not in validators:
        if version not in schemas:
            schemas[version] = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        s = schemas[version]
        name = s.lookup_class_name_from_uid(class_uid=class_uid)
        js = s.get_class_schema(class_name=name, profiles=list(profiles))
        Draft202012Validator.check_schema(js)
        validators[key] = (
            name,
            Draft202012Validator(js, format_checker=Draft202012Validator.FORMAT_CHECKER),
        )
    return validators[key]


def main(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                if not text.strip():
                    continue
                out = {"file": path, "line": n}
                try:
                    event = json.loads(text)
                    meta = event.get("metadata") or {}
                    profiles = meta.get("profiles") or []
                    name, v = validator(meta["version"], event["class_uid"], profiles)
                    errors = sorted(
                        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                        for e in v.iter_errors(event)
                    )
                    out.update(class_name=name, profiles=profiles, ok=not errors, errors=errors)
                except Exception as e:  # a malformed event is a failure, not a crash
                    out.update(ok=False, errors=[f"{type(e).__name__}: {e}"])
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
