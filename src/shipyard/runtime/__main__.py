"""``python -m shipyard.runtime``: verify and run bundles on a production host.

Only the standard library (and, to run, the bundle's requirements) is needed; the
bundle's own ``_runtime/`` is never imported. See ``load_verified``.

    python -m shipyard.runtime verify credit_risk-1.2.0.tar.gz --public-key release.pub
    python -m shipyard.runtime run /srv/models/credit_risk_1_2_0 --public-key release.pub \\
        --outputs pd_score < request.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import _manifest
from ._errors import ShipyardError
from ._host import ENTRY_POINTS, check_bundle, load_verified


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.runtime",
        description="Check a bundle against a trusted key, then run it, with this host's code.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in (
        ("verify", "check the signature and every file; print a JSON report"),
        ("run", "verify, then score a dict dataset read as JSON from stdin (or --input)"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("bundle", help="a bundle.tar.gz or its extracted folder")
        command.add_argument(
            "--public-key",
            help=f"the trusted key, a PEM file or text (default ${_manifest.PUBLIC_KEY_ENV})",
        )
        command.add_argument(
            "--allow-unsigned",
            action="store_true",
            help="accept a bundle without checking who signed it (not for production)",
        )
    run = commands.choices["run"]
    run.add_argument("--input", help="a JSON file (default: stdin)")
    run.add_argument("--outputs", help="comma-separated node names (default: the outputs)")
    run.add_argument("--entry-point", choices=ENTRY_POINTS, default="python_dict")
    run.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let pickles and skops types beyond Shipyard's allow-list load",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        if options.command == "verify":
            report = check_bundle(
                options.bundle, options.public_key, allow_unsigned=options.allow_unsigned
            )[1]
            json.dump(report, sys.stdout)
        else:
            executor = load_verified(
                options.bundle,
                options.public_key,
                entry_point=options.entry_point,
                allow_unsigned=options.allow_unsigned,
                allow_unsafe=options.allow_pickle,
            )
            try:
                if options.input:
                    with open(options.input, encoding="utf-8") as handle:
                        data = json.load(handle)
                else:
                    data = json.load(sys.stdin)
            except (OSError, ValueError) as exc:
                print(f"error: cannot read the input as JSON: {exc}", file=sys.stderr)
                return 2
            outputs = options.outputs.split(",") if options.outputs else None
            json.dump(executor.run_dict(data, outputs), sys.stdout)
    except ShipyardError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
