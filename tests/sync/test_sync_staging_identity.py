"""Staging's results do not change with its speed: content hashes, stored payloads, problems and
quarantine decisions over a varied corpus (tests/sync/staging_corpus.py) equal the golden values
written by the code before the compiled mapper (commit f9b4b37). A changed content hash would make
every deal look changed and re-send 立项申请."""

from __future__ import annotations

import json

import pytest
from tests.sync import staging_corpus as corpus

import bridge.dictionary
from bridge.dictionary import Dictionary


@pytest.fixture(scope="module")
def d() -> Dictionary:
    return bridge.dictionary.load()


@pytest.fixture(scope="module")
def items() -> list[corpus.Item]:
    return corpus.corpus()


@pytest.fixture(scope="module")
def golden() -> list[list[object]]:
    return json.loads(corpus.GOLDEN.read_text())


def test_the_corpus_is_varied(golden: list[list[object]]) -> None:
    codes = {c for entry in golden for c in entry[1]}
    assert codes >= {"missing_required", "invalid_format", "unmapped_value", "hostile_input"}
    assert sum(1 for e in golden if e[2]) > 100  # deals the extract quarantines
    assert sum(1 for e in golden if e[2] is False) > 500  # and deals it queues
    assert sum(1 for e in golden if e[3] is None) > 10  # objects without an id: no snapshot row


def test_staging_outcomes_equal_the_golden_values(d: Dictionary, items: list[corpus.Item],
                                                   golden: list[list[object]]) -> None:
    assert len(items) == len(golden)
    for (entity, obj, assoc), expected in zip(items, golden, strict=True):
        assert corpus.outcome(d, entity, obj, assoc) == expected, (entity, obj)
