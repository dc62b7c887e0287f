"""Demo documents for the simulators' seeded attachments: small, valid-looking PDFs whose bytes depend only
on (title, seed), so both simulators (and a test) can make the same contract scan or invoice and a
de-duplicating bridge sees identical content as one file."""

from __future__ import annotations

import hashlib
import random

PDF_MAGIC = b"%PDF-1.4\n"


def demo_pdf(title: str, seed: int, size: int = 8192) -> bytes:
    """A PDF of about ``size`` bytes: a one-page document naming ``title``, padded with seeded noise
    inside a stream (so equal (title, seed) → equal bytes, different ones → different hashes)."""
    rng = random.Random(hashlib.sha256(f"{seed}:{title}".encode()).digest())
    text = title.encode("utf-8")
    head = (
        PDF_MAGIC + b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/Contents 4 0 R>>endobj\n"
    )
    noise = rng.randbytes(max(0, size - len(head) - len(text) - 64))
    body = b"4 0 obj<</Length " + str(len(text) + len(noise)).encode() + b">>stream\n" + text + noise
    return head + body + b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
