"""Vendor event receivers: HubSpot webhooks (signature v3) and Feishu approval events.

A delivery is verified (signature, timestamp window, token, app/tenant) before
anything is trusted; a verified event only becomes a small :class:`WakeMessage`
(record type, id, event time, delivery id) published on a Redis channel that an
``AssetWatcher`` of the sync DAGs listens to. The vendor payload is never used
as data: the DAG reads the record through its hook as it does when polling.
See ``docs/events.md``.
"""
