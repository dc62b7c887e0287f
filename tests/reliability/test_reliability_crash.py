"""Crash-point sweep: the sync dies at every step of a 200-record run, a rerun finishes it.

Checkpoints are the ``checkpoint=`` hooks of both engines (every step boundary
they expose). After each crash the watermark must not have passed a change
the hub does not hold; after the rerun the target is exact: zero lost, zero
duplicates, every write-back done, nothing queued, the watermarks where a
clean run leaves them. Real process kills (SIGKILL of a subprocess running a
cycle) are in ``test_reliability_kill.py``.

Fast (``make test``): one chained sweep per direction — a single 200-record
run crashed at every checkpoint in turn, each rerun going one step further.
Slow (``make soak``): every checkpoint × first / middle / last occurrence, each
in a fresh world, compared with a clean run of the same workload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.reliability.reliability_support import (
    CountSteps,
    Crash,
    CrashAt,
    c2o_cycle,
    c2o_exact,
    c2o_setup,
    c2o_state,
    c2o_the_run,
    o2c_exact,
    o2c_setup,
    o2c_the_run,
    oa_unstaged_below_watermark,
    say,
    unstaged_below_watermark,
)
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C, make_o2c

from bridge.hub import engine as hub_engine
from bridge.sync import crm_to_oa
from sandbox import launcher

# Every step boundary the engines expose, in the order a run reaches them.
C2O_STEPS = ["extract_page_committed:company", "extract_page_committed:contact", "extract_page_committed:deal",
             "intents_saved", "instance_created", "instance_read", "links_committed", "notice_intent_saved",
             "notice_created", "notice_committed", "writeback_sent", "writeback_committed"]
O2C_STEPS = ["discovered", "instances_staged", "watermarks_committed", "deals_read", "deals_written",
             "deals_committed", "activities_upserted", "associations_sent", "activities_committed"]


def c2o_world(c2o: C2O) -> C2O:
    """Several pages, chunks and batches per run: 50 deals a page, 50 creates per hub commit, write-back by 100."""
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, page_size=50, create_chunk=50, writeback_batch=100,
                                       initial_backfill_seconds=None)
    return c2o


def c2o_run_with_crash(w: C2O, checkpoint: CrashAt) -> bool:
    """One run that may crash; True when it crashed. After a crash the watermark must still be safe."""
    try:
        c2o_cycle(w, checkpoint)
    except Crash:
        lost = unstaged_below_watermark(w)
        assert lost == {}, f"after a crash at {checkpoint.step} #{checkpoint.occurrence} the watermark passed {lost}"
        return True
    return False


# ---------------------------------------------------------------- fast: one chained sweep per direction


def test_crm_to_oa_crash_at_every_step_of_a_200_deal_run(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w)
    c2o_the_run(w, work)
    # Crash the run, then crash each rerun one step further; a mid-run occurrence where a step repeats.
    chain = [("extract_page_committed:company", 1), ("extract_page_committed:contact", 1),
             ("extract_page_committed:deal", 2), ("intents_saved", 2), ("instance_created", 25),
             ("instance_read", 30), ("links_committed", 2), ("notice_intent_saved", 10), ("notice_created", 10),
             ("notice_committed", 10), ("writeback_sent", 1), ("writeback_committed", 1)]
    crashed: list[str] = []
    for step, occurrence in chain:
        if c2o_run_with_crash(w, CrashAt(step, occurrence)):
            crashed.append(f"{step}#{occurrence}")
    assert len(crashed) == len(chain), f"every planned crash fired: {crashed}"
    assert {c.split("#")[0] for c in crashed} == set(C2O_STEPS)
    c2o_cycle(w)  # the last rerun, undisturbed
    c2o_cycle(w)  # and a settling run: it must write nothing
    found = c2o_exact(w, work)
    say("crash-sweep crm_to_oa (chained)", {"records": 200, "crashes": len(crashed), "steps": len(C2O_STEPS)},
        found)


def test_oa_to_crm_crash_at_every_step_of_a_200_record_run(o2c: O2C) -> None:
    work = o2c_setup(o2c)
    o2c_the_run(o2c, work)
    assert work.records == 200
    chain = [("discovered", 1), ("instances_staged", 1), ("watermarks_committed", 1), ("deals_read", 1),
             ("deals_written", 1), ("deals_committed", 1), ("activities_upserted", 2), ("associations_sent", 1),
             ("activities_committed", 1)]
    crashed: list[str] = []
    for step, occurrence in chain:
        checkpoint = CrashAt(step, occurrence)
        try:
            o2c.discover(checkpoint=checkpoint)
            o2c.load(checkpoint=checkpoint)
        except Crash:
            crashed.append(f"{step}#{occurrence}")
            assert oa_unstaged_below_watermark(o2c, o2c.cfg.forms) == {}, f"watermark passed a record at {step}"
    assert len(crashed) == len(chain), f"every planned crash fired: {crashed}"
    o2c.sync()
    before = o2c.crm_writes()
    counts = o2c.sync()
    assert counts.get("written", 0) == 0
    assert o2c.crm_writes() == before, "a settled run writes nothing"
    found = o2c_exact(o2c, work)
    say("crash-sweep oa_to_crm (chained)", {"records": work.records, "crashes": len(crashed),
                                            "steps": len(O2C_STEPS)}, found)


# ---------------------------------------------------------------- slow: every step × first / middle / last


def _occurrences(total: int) -> list[int]:
    return sorted({1, max(1, (total + 1) // 2), total})


@pytest.fixture(scope="module")
def c2o_reference(c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path_factory: pytest.TempPathFactory,
                  ) -> dict[str, Any]:
    """A clean run of the workload: its end state and how often each checkpoint is reached."""
    from tests.sync.sync_c2o_world import make_c2o

    mp = pytest.MonkeyPatch()
    target = tmp_path_factory.mktemp("c2o_ref") / "hub.sqlite"
    target.write_bytes(c2o_hub_template.read_bytes())
    try:
        w = c2o_world(make_c2o(c2o_sims, f"sqlite:///{target}", mp))
        work = c2o_setup(w)
        c2o_the_run(w, work)
        counter = CountSteps()
        c2o_cycle(w, counter)
        c2o_cycle(w)
        c2o_exact(w, work)
        state = c2o_state(w, work)
        w.crm.close()
        w.oa.close()
    finally:
        hub_engine.get_engine(f"sqlite:///{target}").dispose()
        mp.undo()
    return {"steps": dict(counter.seen), "state": state}


def _c2o_cases() -> list[tuple[str, str]]:
    return [(step, which) for step in C2O_STEPS for which in ("first", "middle", "last")]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "which"), _c2o_cases())
def test_crm_to_oa_crash_at_each_step_then_rerun_ends_like_a_clean_run(
    c2o: C2O, c2o_reference: dict[str, Any], step: str, which: str,
) -> None:
    total = c2o_reference["steps"].get(step, 0)
    assert total > 0, f"the clean run never reaches {step}"
    occurrence = {"first": 1, "middle": max(1, (total + 1) // 2), "last": total}[which]
    w = c2o_world(c2o)
    work = c2o_setup(w)
    c2o_the_run(w, work)
    assert c2o_run_with_crash(w, CrashAt(step, occurrence)), f"{step} #{occurrence} not reached"
    c2o_cycle(w)
    c2o_cycle(w)
    found = c2o_exact(w, work)
    assert c2o_state(w, work) == c2o_reference["state"], "the target differs from a clean run's"
    say(f"crash crm_to_oa at {step} #{occurrence}/{total}", {"records": 200, "crash": f"{step}#{occurrence}"},
        {**found, "same_as_clean_run": True})


@pytest.fixture(scope="module")
def o2c_steps(c2o_sims: launcher.Simulators, c2o_hub_template: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """How often a clean OA → CRM run of the workload reaches each checkpoint."""
    mp = pytest.MonkeyPatch()
    target = tmp_path_factory.mktemp("o2c_ref") / "hub.sqlite"
    target.write_bytes(c2o_hub_template.read_bytes())
    try:
        w = make_o2c(c2o_sims, f"sqlite:///{target}", mp)
        work = o2c_setup(w)
        o2c_the_run(w, work)
        counter = CountSteps()
        w.discover(checkpoint=counter)
        w.load(checkpoint=counter)
        w.sync()
        o2c_exact(w, work)
        w.c2o.crm.close()
        w.c2o.oa.close()
    finally:
        hub_engine.get_engine(f"sqlite:///{target}").dispose()
        mp.undo()
    return dict(counter.seen)


@pytest.mark.slow
@pytest.mark.parametrize(("step", "which"), [(s, w) for s in O2C_STEPS for w in ("first", "middle", "last")])
def test_oa_to_crm_crash_at_each_step_then_rerun_loses_and_duplicates_nothing(
    o2c: O2C, o2c_steps: dict[str, int], step: str, which: str,
) -> None:
    total = o2c_steps.get(step, 0)
    assert total > 0, f"the clean run never reaches {step}"
    occurrence = {"first": 1, "middle": max(1, (total + 1) // 2), "last": total}[which]
    work = o2c_setup(o2c)
    o2c_the_run(o2c, work)
    checkpoint = CrashAt(step, occurrence)

    def run() -> None:
        o2c.discover(checkpoint=checkpoint)
        o2c.load(checkpoint=checkpoint)

    with pytest.raises(Crash):
        run()
    assert oa_unstaged_below_watermark(o2c, o2c.cfg.forms) == {}
    o2c.sync()
    before = o2c.crm_writes()
    o2c.sync()
    assert o2c.crm_writes() == before, "a settled run writes nothing"
    found = o2c_exact(o2c, work)
    say(f"crash oa_to_crm at {step} #{occurrence}/{total}", {"records": work.records,
                                                             "crash": f"{step}#{occurrence}"}, found)


def test_the_sweep_covers_every_checkpoint_the_engines_expose() -> None:
    """The step lists above are all the checkpoints in the engines' source (a new one must join the sweep)."""
    import re

    from bridge.sync import oa_to_crm

    # Each direction is a package of step modules; a checkpoint is ``run.step("name")`` in any of them.
    sources = {name: "\n".join(p.read_text(encoding="utf-8")
                               for p in Path(module.__file__).parent.glob("*.py"))  # type: ignore[arg-type]
               for name, module in (("c2o", crm_to_oa), ("o2c", oa_to_crm))}
    found = {name: set(re.findall(r'run\.step\(f?"([a-z_]+)(?::\{entity\})?"\)', text))
             for name, text in sources.items()}
    c2o_names = {s.split(":")[0] for s in C2O_STEPS}
    assert found["c2o"] == c2o_names, f"crm_to_oa checkpoints {sorted(found['c2o'])} vs sweep {sorted(c2o_names)}"
    from tests.sync.test_sync_attachments_o2c import ATTACHMENT_STEPS  # crash-tested there, with files

    o2c_names = set(O2C_STEPS) | set(ATTACHMENT_STEPS)
    assert found["o2c"] == o2c_names, f"oa_to_crm checkpoints {sorted(found['o2c'])} vs {sorted(o2c_names)}"
    entities = crm_to_oa.ENTITY_ORDER
    assert {f"extract_page_committed:{e}" for e in entities} <= set(C2O_STEPS)
    say("crash-sweep coverage", {"source_checkpoints": sum(len(v) for v in found.values())},
        {"in_sweep": len(C2O_STEPS) + len(O2C_STEPS) + len(ATTACHMENT_STEPS), "missing": 0})


