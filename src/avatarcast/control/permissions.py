"""Who may do what: one table for the REST routes and the console.

``PERMISSIONS`` names every ``/v1`` route (by its FastAPI route name, the function's name) and
the grants a key needs for it (``security.grants_of``: admin grants all; an operator key
linked to a supervisor also grants ``supervisor``). ``PUBLIC`` routes take no API key: they
check a viewer token or serve public files. A route's dependency (``deps.require_role`` with
one of the sets below) must match its row, and each console action names the route it runs
and is checked against the same row (``console.auth.Permit``); ``tests/test_permissions.py``
holds every route and console action to that.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ANY_KEY",
    "BACKEND",
    "OPERATOR",
    "PERMISSIONS",
    "PUBLIC",
    "STAFF",
    "STOPPER",
    "SUPERVISOR",
    "WRITER",
    "grants_allow",
]

ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"operator"})
SUPERVISOR = frozenset({"supervisor"})
BACKEND = frozenset({"backend"})
#: reading what happened, and actions that only make a stream safer (kill, mute)
STAFF = frozenset({"operator", "supervisor"})
#: product and stream writers
WRITER = frozenset({"operator", "backend"})
#: stopping a stream: its writers and the person watching it
STOPPER = frozenset({"operator", "backend", "supervisor"})
#: any valid key
ANY_KEY = frozenset({"admin", "operator", "supervisor", "backend"})
#: no API key: a viewer token, or nothing to protect
PUBLIC: frozenset[str] = frozenset()

PERMISSIONS: Mapping[str, frozenset[str]] = {
    # tenants, seller, keys
    "list_tenants": ADMIN,
    "create_tenant": ADMIN,
    "get_tenant": ADMIN,
    "update_tenant": ADMIN,
    "delete_tenant": ADMIN,
    "get_seller": ANY_KEY,
    "put_seller": OPERATOR,
    "delete_seller": OPERATOR,
    "create_key": OPERATOR,
    "list_keys": OPERATOR,
    "revoke_key": OPERATOR,
    # catalog
    "list_products": ANY_KEY,
    "create_product": WRITER,
    "import_products": WRITER,
    "get_product": ANY_KEY,
    "replace_product": WRITER,
    "update_product": WRITER,
    "delete_product": WRITER,
    "upload_image": WRITER,
    "get_image": ANY_KEY,
    "list_avatars": ANY_KEY,
    "list_voices": ANY_KEY,
    # destinations and supervisors
    "list_destinations": STAFF,
    "create_destination": OPERATOR,
    "get_destination": STAFF,
    "update_destination": OPERATOR,
    "delete_destination": OPERATOR,
    "create_supervisor": OPERATOR,
    "list_supervisors": STAFF,
    "get_supervisor": STAFF,
    # streams
    "list_streams": ANY_KEY,
    "create_stream": OPERATOR,
    "get_stream_route": ANY_KEY,
    "delete_stream": OPERATOR,
    "update_stream": OPERATOR,
    "start_stream": WRITER,
    "stop_stream": STOPPER,
    "pause_stream": STAFF,
    "resume_stream": STAFF,
    "transcript": ANY_KEY,
    "get_session": ANY_KEY,
    "stream_events": STAFF,
    "sign_viewer": OPERATOR,
    "rotate_viewer_token": OPERATOR,
    # supervision
    "go_on_duty": SUPERVISOR,
    "go_off_duty": SUPERVISOR,
    "heartbeat": SUPERVISOR,
    "kill": STAFF,
    "mute": STAFF,
    "unmute": SUPERVISOR,
    "say": SUPERVISOR,
    "product_action": SUPERVISOR,
    "pending_answers": SUPERVISOR,
    "decide_answer": SUPERVISOR,
    # chat
    "post_chat": BACKEND,
    "block_message": SUPERVISOR,
    # fault drills (only where monitors.fault_injection is on)
    "inject_fault": STAFF,
    # alert webhooks: a tenant's admins (a webhook's URL and secret reach outside the tenant)
    "list_webhooks": ADMIN,
    "create_webhook": ADMIN,
    "get_webhook": ADMIN,
    "delete_webhook": ADMIN,
    "dead_letters": ADMIN,
    "list_deliveries": ADMIN,
    "retry_delivery": ADMIN,
    # platform chat sources (the webhook source's own URL checks its HMAC signature instead)
    "add_source": OPERATOR,
    "list_sources": ANY_KEY,
    "remove_source": OPERATOR,
    "update_source": OPERATOR,
    "chat_account": ANY_KEY,
    "chat_fates": ANY_KEY,
    # schedules and audit
    "list_schedules": OPERATOR,
    "create_schedule": OPERATOR,
    "get_schedule": OPERATOR,
    "update_schedule": OPERATOR,
    "delete_schedule": OPERATOR,
    "list_audit": STAFF,
    # viewers and probes: no API key
    "healthz": PUBLIC,
    "webhook": PUBLIC,
    "readyz": PUBLIC,
    "metrics": PUBLIC,
    "player": PUBLIC,
    "whep_offer": PUBLIC,
    "whep_end": PUBLIC,
    "hls_file": PUBLIC,
    "hls_preflight": PUBLIC,
    "embed": PUBLIC,
    "on_air": PUBLIC,
    "hls_js": PUBLIC,
}


def grants_allow(grants: frozenset[str], action: str) -> bool:
    """Whether a key with ``grants`` may run the route named ``action``. An unknown name is a
    KeyError: a check against a route that is not in the table is a bug, never a yes."""
    needed = PERMISSIONS[action]
    return not needed or bool(grants & needed)
