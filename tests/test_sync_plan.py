"""The incremental plan on its own: which items a run loads, when paging stops, what state it leaves,
and what the paging cost model chooses. Pure logic, no HTTP: these run in milliseconds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from openai_batches import settings
from openai_batches.client.paging import Page
from openai_batches.sources.batches.plan import (
    OpenBatch,
    ProjectState,
    SeenIds,
    SyncPlan,
    latest_believable,
    sane_created,
)

NOW = 1_790_000_000
LOOKBACK = 900


def item(n: int, created: Any, status: str = "completed") -> dict[str, Any]:
    return {"id": f"batch_{n:06d}", "created_at": created, "status": status}


def run(plan: SyncPlan, pages: list[list[dict[str, Any]]]) -> tuple[list[str], int]:
    """Feeds pages as the pager does; returns the ids loaded and the number of pages requested."""
    loaded: list[str] = []
    requested = 0
    for i, data in enumerate(pages):
        requested += 1
        page = Page(data=data, has_more=i < len(pages) - 1, project="p")
        loaded += [b["id"] for b in plan.observe(page).load]
        if not (page.has_more and plan.wants_next(page)):
            break
    return loaded, requested


def plan_after(state: ProjectState | None, **kw: Any) -> SyncPlan:
    return SyncPlan(state, lookback=LOOKBACK, latest=NOW + 120, warn_odd=False, **kw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, NOW),
        (float(NOW), NOW),
        (str(NOW), NOW),  # coerced the same way the loader coerces the column
        (NOW + 120, NOW + 120),  # within the tolerance of the API's clock
        (NOW + 121, None),  # in the future: clock skew
        (NOW * 1000, None),  # milliseconds
        (None, None),
        ("yesterday", None),
        (True, None),
        (NOW + 0.5, None),
        (0, None),
        (-5, None),
        (float("nan"), None),
        ({"s": NOW}, None),
    ],
)
def test_only_sane_creation_times_steer_the_plan(value: Any, expected: int | None) -> None:
    assert sane_created({"created_at": value}, latest=NOW + 120) == expected


def test_the_apis_clock_bounds_creation_times_else_a_day_ahead_of_ours() -> None:
    assert latest_believable(NOW, now=0) == NOW + settings.CREATED_AT_TOLERANCE_S
    assert latest_believable(None, now=NOW) == NOW + 86_400


def test_a_backfill_loads_everything_and_leaves_the_window_and_open_batches() -> None:
    items = [item(n, NOW - 60 * (300 - n), "in_progress" if n % 50 == 0 else "completed") for n in range(300, 0, -1)]
    plan = plan_after(None)
    loaded, requested = run(plan, [items[:100], items[100:200], items[200:]])
    assert (len(loaded), requested) == (300, 3)
    state = plan.new_state()
    assert state.watermark == NOW
    assert set(state.recent) == {b["id"] for b in items if b["created_at"] >= NOW - LOOKBACK}
    assert set(state.open) == {b["id"] for b in items if b["status"] == "in_progress"}
    assert state.open[items[0]["id"]].position == 0
    assert plan.counts.new == 300 and plan.counts.still_open == len(state.open)


def test_a_late_visible_batch_inside_the_window_is_loaded_once() -> None:
    previous = ProjectState(watermark=NOW, recent={"batch_000010": NOW, "batch_000009": NOW - 300})
    late = item(7, NOW - 30)  # created 30 s below the watermark, visible only now
    new = item(11, NOW + 60)
    pages = [[new, item(10, NOW), late, item(9, NOW - 300), item(8, NOW - LOOKBACK - 1), item(6, NOW - 2000)]]
    plan = plan_after(previous)
    loaded, requested = run(plan, pages)
    assert loaded == [new["id"], late["id"]] and requested == 1
    assert plan.counts.new == 2
    # Next run: both are known; nothing is loaded again.
    again = plan_after(plan.new_state())
    assert run(again, pages) == ([], 1)


def test_below_the_window_nothing_is_reread() -> None:
    previous = ProjectState(watermark=NOW, recent={})
    plan = plan_after(previous)
    loaded, _ = run(plan, [[item(3, NOW - LOOKBACK - 1), item(2, NOW - LOOKBACK - 5), item(1, NOW - 9000)]])
    assert loaded == []


def test_a_full_window_costs_more_pages_and_less_than_a_page_costs_one() -> None:
    previous = ProjectState(watermark=NOW, recent={f"batch_{n:06d}": NOW - n for n in range(150)})
    window = [item(n, NOW - n) for n in range(150)] + [item(n, NOW - LOOKBACK - n) for n in range(150, 400)]
    pages = [window[i : i + 100] for i in range(0, len(window), 100)]
    assert run(plan_after(previous), pages) == ([], 2)  # 150 batches in the window: two pages
    small = ProjectState(watermark=NOW, recent={f"batch_{n:06d}": NOW - n for n in range(50)})
    window = [item(n, NOW - n) for n in range(50)] + [item(n, NOW - LOOKBACK - n) for n in range(50, 400)]
    pages = [window[i : i + 100] for i in range(0, len(window), 100)]
    assert run(plan_after(small), pages) == ([], 1)


@pytest.mark.parametrize("odd", [None, "2026-01-01", NOW * 1000, NOW + 86_400, 0])
def test_an_odd_creation_time_neither_stops_paging_nor_moves_the_watermark(odd: Any) -> None:
    previous = ProjectState(watermark=NOW - 3600, recent={})
    items = [item(n, NOW - 3600 + n) for n in range(150, 0, -1)]
    items[40] = item(999, odd)  # read as 0 it once ended paging here: 51 of 150 new batches lost
    items.append(item(0, NOW - 9000))
    items.append(item(1000, NOW - 9001))
    pages = [items[i : i + 50] for i in range(0, len(items), 50)]
    plan = plan_after(previous)
    loaded, _ = run(plan, pages)
    assert len(loaded) == 150
    state = plan.new_state()
    assert state.watermark == NOW - 3600 + 150
    assert state.odd == ["batch_000999"]
    # The odd batch is not loaded again by the next run, whatever its position.
    assert run(plan_after(state), [[item(999, odd), item(151, NOW - 9000), item(152, NOW - 9001)]]) == ([], 1)


def test_one_out_of_place_old_value_does_not_end_paging() -> None:
    previous = ProjectState(watermark=NOW - 3600, recent={})
    new = [item(n, NOW - 3600 + n) for n in range(200, 0, -1)]
    new[99] = item(500, NOW - 50_000)  # a sane but far too old value at the end of the first page
    plan = plan_after(previous)
    loaded, requested = run(plan, [new[:100], new[100:], [item(0, NOW - 9000), item(1001, NOW - 9100)]])
    assert requested == 3 and len(loaded) == 199  # everything but the old-looking one, already loaded


def test_the_same_item_twice_is_loaded_and_counted_once() -> None:
    a, b, c = item(3, NOW), item(2, NOW - 1), item(1, NOW - 2)
    plan = plan_after(None)
    loaded, _ = run(plan, [[a, b], [b, c], [dict(a, created_at=NOW - 5000)]])
    assert loaded == [a["id"], b["id"], c["id"]] and plan.counts.new == 3


def test_open_batches_deep_down_are_read_by_id_and_many_by_paging() -> None:
    deep = ProjectState(watermark=NOW, recent={}, open={"batch_deep": OpenBatch(NOW - 40_000, 450)})
    plan = plan_after(deep)
    head = [item(n, NOW - LOOKBACK - 10 * n) for n in range(1, 101)]
    assert run(plan, [head, [item(999, NOW - 99_999)]]) == ([], 1)
    assert plan.leftovers() == ["batch_deep"]  # 1 GET instead of 4 more pages

    many = ProjectState(
        watermark=NOW, recent={}, open={f"batch_{n:06d}": OpenBatch(NOW - LOOKBACK - 10 * n, n) for n in range(1, 251)}
    )
    plan = plan_after(many)
    items = [item(n, NOW - LOOKBACK - 10 * n, "completed") for n in range(1, 400)]
    loaded, requested = run(plan, [items[i : i + 100] for i in range(0, 400, 100)])
    assert requested == 3 and len(loaded) == 250 and plan.leftovers() == []  # 3 pages instead of 250 GETs
    assert plan.counts.updated == 250


def test_a_404_keeps_a_batch_open_until_confirmed_gone() -> None:
    state = ProjectState(watermark=NOW, recent={}, open={"batch_x": OpenBatch(NOW - 40_000, 450)})
    for attempt in range(1, settings.GONE_AFTER_MISSES):
        plan = plan_after(state)
        run(plan, [[item(1, NOW - LOOKBACK - 1), item(2, NOW - LOOKBACK - 2)]])
        assert plan.leftovers() == ["batch_x"]
        plan.record_fetched("batch_x", None)
        state = plan.new_state()
        assert state.open["batch_x"].misses == attempt and plan.counts.gone == 0
    plan = plan_after(state)
    run(plan, [[item(1, NOW - LOOKBACK - 1), item(2, NOW - LOOKBACK - 2)]])
    plan.leftovers()
    plan.record_fetched("batch_x", None)
    assert plan.counts.gone == 1 and "batch_x" not in plan.new_state().open
    assert plan.new_state().gone == ["batch_x"]


def test_paging_past_where_a_batch_must_be_confirms_it_gone_at_once() -> None:
    state = ProjectState(watermark=NOW, recent={}, open={"batch_x": OpenBatch(NOW - 2000, 5)})
    plan = plan_after(state)
    items = [item(n, NOW - 100 * n) for n in range(1, 60)]  # the list goes well below NOW - 2000
    run(plan, [items])
    assert plan.leftovers() == ["batch_x"]
    plan.record_fetched("batch_x", None)
    assert [g.reason for g in plan.gone_now] == ["paged past"]


def test_a_gone_batch_the_api_returns_again_is_noted() -> None:
    state = ProjectState(watermark=NOW - 100, recent={}, gone=["batch_000005"])
    plan = plan_after(state)
    run(plan, [[item(5, NOW), item(1, NOW - 9000), item(2, NOW - 9001)]])
    assert plan.back == ["batch_000005"] and plan.new_state().gone == []


def test_state_of_the_previous_version_is_read() -> None:
    old = {"watermark": [NOW, "batch_a"], "watermark_ids": ["batch_a", "batch_b"], "open": {"batch_c": [NOW - 50, 7]}}
    state = ProjectState.load(old)
    assert state is not None
    assert state.watermark == NOW and state.recent == {"batch_a": NOW, "batch_b": NOW}
    assert state.open == {"batch_c": OpenBatch(NOW - 50, 7, 0)}
    assert ProjectState.load(state.dump()) == state


def test_seen_ids_is_exact_whatever_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    seen, reference = SeenIds(), set()
    monkeypatch.setattr(SeenIds, "_CHUNK", 64)  # exercise chunks and merged chunks
    for _ in range(300):
        ids = [f"batch_{rng.randint(0, 3000):05d}" for _ in range(rng.randint(1, 40))]
        expected = []
        for i in ids:
            expected.append(i not in reference)
            reference.add(i)
        assert seen.add_new(ids) == expected
    assert len(seen) == len(reference)
    assert len(seen._merged) >= 5 and len(seen._chunks) < SeenIds._MERGED  # both levels were used
