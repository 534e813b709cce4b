"""``till verify --store``: the store audit (``projections.store_audit``) on the command line.

Exit status: 0 intact (warnings allowed), 1 tampering found, 2 could not check.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import TYPE_CHECKING

import psycopg

from adapters.settings import Settings
from domain.errors import LedgerError

if TYPE_CHECKING:
    from adapters.signing import SigningKey

DESCRIPTION = """\
With a bundle file: check a dispute evidence bundle offline (every event's hash, the chain, the
service's signature); any edit, deletion or reordering is named.

With --store: check the whole store the TILL_* variables name, changing nothing: every stream's
hash chain (versions 1..n, each prev_hash = the hash of the event before, notification ids in
version order), events that no longer decode, snapshots against the events replayed to them, gaps
in the notification log, and every row and running total of the ledger view against a fresh
recomputation from the events. Each finding names the stream (Transaction, TillSession, Terminal…)
and version with its notification id, or the view table and row.

The last event of each stream has no successor to witness its hash: save the stream heads while
the store is intact (--save-heads FILE, kept off the database host) and pass them later (--heads
FILE) to cover it, and to tell a deleted event from a PostgreSQL rolled-back insert (both leave a
gap in the notification ids). Without --json one line per finding, then a summary.

Exit status: 0 intact (warnings allowed), 1 tampering found, 2 could not check.
"""


def _signing_key(settings: Settings) -> SigningKey | None:
    from adapters.signing import SigningKey

    path = settings.signing_key_path
    try:
        return SigningKey.load_or_create(path) if path.exists() else None  # never creates one here
    except (OSError, ValueError):
        return None


def _unchecked(args: argparse.Namespace, reason: str) -> int:
    if args.json:
        print(json.dumps({"status": "unchecked", "exit_code": 2, "error": reason}, ensure_ascii=False))
    print(f"till verify: {reason}", file=sys.stderr)
    return 2


def verify_store(args: argparse.Namespace) -> int:
    # Imported here: `till --help` and the other commands need none of it.
    from projections.store_audit import audit_store
    from projections.stream_heads import HeadsUnusable, StreamHeads, load_heads, save_heads

    settings = Settings()
    key = _signing_key(settings)
    heads: StreamHeads | None = None
    try:
        if args.heads is not None:
            heads = load_heads(args.heads, key)
        report, fresh = audit_store(settings, heads=heads, strict_gaps=args.strict_gaps,
                                    collect_heads=args.save_heads is not None)
    except HeadsUnusable as exc:
        return _unchecked(args, str(exc))
    except LedgerError as exc:  # StoreUnavailable: no store there, or it does not answer
        return _unchecked(args, f"could not check the store: {exc.detail}")
    except (psycopg.Error, sqlite3.Error) as exc:  # the store went away mid-check
        return _unchecked(args, f"could not check the store: {exc.__class__.__name__}: {exc}")
    if args.json:
        print(report.to_json())
    else:
        print(f"checking {report.store}" + (f" against the heads in {args.heads} ({heads.note})" if heads else ""))
        print("\n".join(report.lines()))
    if args.save_heads is not None:
        if fresh is None:
            print(f"till verify: heads NOT saved to {args.save_heads}: the store is not intact", file=sys.stderr)
        else:
            try:
                save_heads(args.save_heads, fresh, report.store, key)
            except OSError as exc:
                print(f"till verify: cannot save the heads to {args.save_heads}: {exc}", file=sys.stderr)
                return 2
            signed = f"signed with key {key.key_id}" if key else "not signed (no signing key readable here)"
            print(f"saved the heads of {len(fresh.streams)} streams (log head {fresh.head}) to {args.save_heads}, "
                  f"{signed}", file=sys.stderr)
    return report.exit_code
