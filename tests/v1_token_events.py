"""Stored events of ApiToken as version 1 of ``ApiToken.Issued`` wrote them (before ``expires_at``).

Captured byte for byte from the store of the code before token expiry (git 2b98a38): two tokens
issued at 2026-11-24T02:00:00.001Z, the second revoked at 02:05Z. The Revoked event's ``prev_hash`` is
the hash of the version 1 Issued event, so a reader that upcasts must keep that event's hash intact.
The tokens' secrets are below only because this is a test fixture; the store holds their hashes.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import StoredEvent

KEPT_TOKEN = "tl_v1-fixture-kept"  # role accountant, never revoked
REVOKED_TOKEN = "tl_v1-fixture-revoked"  # role dispute, revoked
KEPT_ID = UUID("879daea2-c58f-5765-a297-750030769163")
REVOKED_ID = UUID("bf626703-4d43-5679-b92d-fca15457a435")

V1_EVENTS = [
    StoredEvent(KEPT_ID, 1, "domain.api_token:ApiToken.Issued", (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-24T02:00:00.001000+00:00"},'
        b'"originator_topic":"domain.api_token:ApiToken","terminal_id":null,"operator_no":null,"device_time":null,'
        b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","role":"accountant",'
        b'"bound_terminal_id":null,"label":"stored by v1",'
        b'"token_hash":"6368b11e764d1e5131260329cbe25dcf2913d7799fae888a7abca2eca5f6a3ff"}')),
    StoredEvent(REVOKED_ID, 1, "domain.api_token:ApiToken.Issued", (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-24T02:00:00.001000+00:00"},'
        b'"originator_topic":"domain.api_token:ApiToken","terminal_id":null,"operator_no":null,"device_time":null,'
        b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","role":"dispute",'
        b'"bound_terminal_id":null,"label":"stored by v1, revoked",'
        b'"token_hash":"e6d389c01a116f31f69f88490a5cd546385dc1d570c9ce11ba5bcc1676e3b00c"}')),
    StoredEvent(REVOKED_ID, 2, "domain.api_token:ApiToken.Revoked", (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-24T02:05:00+00:00"},"terminal_id":null,'
        b'"operator_no":null,"device_time":null,'
        b'"prev_hash":"5f35c00654a63478b410cb52b9f471a917219d774c2ebb47c82cfa3a38e751f6"}')),
]
