"""The hub: the bridge's own database (watermarks, snapshots, xref, quarantine, audit, runs)."""
